"""The SQL outbox and inbox on PostgreSQL: the contract, the claim's plan, concurrent inboxes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio
from sqlalchemy import text

from dockyard.outbox import Inbox, OutboxWriter
from dockyard.sql import Database, SqlInbox, SqlOutboxStore, SqlOutboxWriter
from dockyard.testing.contracts import OutboxContract, OutboxHarness

pytestmark = pytest.mark.postgres


def sql_harness(database: Database) -> OutboxHarness:
    @asynccontextmanager
    async def transaction() -> AsyncIterator[tuple[OutboxWriter, Inbox]]:
        async with database.unit_of_work() as uow:
            yield SqlOutboxWriter(uow), SqlInbox(uow)

    return OutboxHarness(store=SqlOutboxStore(database), transaction=transaction)


class TestPostgresOutbox(OutboxContract):
    @pytest_asyncio.fixture
    async def outbox_factory(self, postgres_database: Database) -> AsyncIterator[OutboxHarness]:
        yield sql_harness(postgres_database)


async def test_the_claim_walks_the_pending_index_in_order(postgres_database: Database) -> None:
    # The advisory locks in the claim's WHERE must be taken row by row as the index scan
    # reaches them, never on every pending row before a sort (docs/design/outbox-relay.md).
    from dockyard.sql._outbox import _CLAIM

    async with postgres_database.unit_of_work() as uow:
        await uow.connection.execute(text("SET LOCAL enable_seqscan = off"))
        plan = await uow.connection.execute(
            text(f"EXPLAIN {_CLAIM['postgresql'].text}"), {"now": 0.0, "limit": 500}
        )
        lines = "\n".join(row[0] for row in plan)
    assert "ix_dockyard_outbox_pending" in lines
    assert "Sort" not in lines


async def test_concurrent_inbox_records_let_one_scope_win(postgres_database: Database) -> None:
    first_recorded = asyncio.Event()

    async def first() -> bool:
        async with postgres_database.unit_of_work() as uow:
            recorded = await SqlInbox(uow).record("m-1", "billing")
            first_recorded.set()
            await asyncio.sleep(0.2)  # the second scope waits on the key meanwhile
            return recorded

    async def second() -> bool:
        await first_recorded.wait()
        async with postgres_database.unit_of_work() as uow:
            return await SqlInbox(uow).record("m-1", "billing")

    assert list(await asyncio.gather(first(), second())) == [True, False]
