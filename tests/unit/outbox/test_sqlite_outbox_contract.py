"""The SQL outbox and inbox on SQLite pass the contract every adapter passes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest_asyncio

from dockyard.outbox import Inbox, OutboxMessage, OutboxRelay, OutboxWriter, RelaySettings
from dockyard.sql import Database, SqlInbox, SqlOutboxStore, SqlOutboxWriter
from dockyard.testing.contracts import OutboxContract, OutboxHarness
from dockyard.transport.memory import InMemoryTransport


def sql_harness(database: Database) -> OutboxHarness:
    @asynccontextmanager
    async def transaction() -> AsyncIterator[tuple[OutboxWriter, Inbox]]:
        async with database.unit_of_work() as uow:
            yield SqlOutboxWriter(uow), SqlInbox(uow)

    return OutboxHarness(
        store=SqlOutboxStore(database),
        transaction=transaction,
    )


class TestSqliteOutbox(OutboxContract):
    @pytest_asyncio.fixture
    async def outbox_factory(self, tmp_path: Path) -> AsyncIterator[OutboxHarness]:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
        await database.create_tables()
        try:
            yield sql_harness(database)
        finally:
            await database.dispose()


async def test_a_relay_on_sqlite_takes_one_batch_at_a_time(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    await database.create_tables()
    try:
        messages = [
            OutboxMessage(f"m-{n:02d}", "orders", "Placed", b"{}", partition_key=f"k-{n % 3}")
            for n in range(30)
        ]
        async with database.unit_of_work() as uow:
            await SqlOutboxWriter(uow).add(messages)
        store = SqlOutboxStore(database)
        assert not store.claims_overlap  # one writer: a second claim would wait for the first
        transport = InMemoryTransport()
        async with transport.subscribe("orders", "g", prefetch=30) as subscription:
            relay = OutboxRelay(store, transport, RelaySettings(batch_size=5, pipeline=3))
            assert await relay.drain() == 30
            received = []
            async for delivery in subscription:
                received.append(delivery.message.message_id)
                await delivery.ack()
                if len(received) == 30:
                    break
        assert received == [m.message_id for m in messages]
    finally:
        await database.dispose()
