"""The SQL outbox and inbox on SQLite pass the contract every adapter passes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest_asyncio

from dockyard.outbox import Inbox, OutboxWriter
from dockyard.sql import Database, SqlInbox, SqlOutboxStore, SqlOutboxWriter
from dockyard.testing.contracts import OutboxContract, OutboxHarness


def sql_harness(database: Database, *, concurrent_claims: bool) -> OutboxHarness:
    @asynccontextmanager
    async def transaction() -> AsyncIterator[tuple[OutboxWriter, Inbox]]:
        async with database.unit_of_work() as uow:
            yield SqlOutboxWriter(uow), SqlInbox(uow)

    return OutboxHarness(
        store=SqlOutboxStore(database),
        transaction=transaction,
        concurrent_claims=concurrent_claims,
    )


class TestSqliteOutbox(OutboxContract):
    @pytest_asyncio.fixture
    async def outbox_factory(self, tmp_path: Path) -> AsyncIterator[OutboxHarness]:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
        await database.create_tables()
        try:
            yield sql_harness(database, concurrent_claims=False)
        finally:
            await database.dispose()
