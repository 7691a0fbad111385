"""Scheduled messages with several relays on PostgreSQL: each is promoted once and published
once, in due order within its key, never before due; cancels racing the relays' promotions and
claims are told the truth."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from dockyard.outbox import (
    Cancellation,
    OutboxMessage,
    OutboxRelay,
    OutboxStatus,
    Promotion,
    RelaySettings,
)
from dockyard.sql import Database, SqlOutboxStore, SqlOutboxWriter
from dockyard.testing.pytest import isolated_database
from dockyard.transport import TransportMessage
from dockyard.transport.memory import InMemoryTransport
from services import POSTGRES_URL

pytestmark = pytest.mark.postgres

MESSAGES = 3_000
KEYS = 37
WAVES = 10


class Recording(InMemoryTransport):
    """Every publish, in the order the broker accepted them, with the wall-clock time."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted: list[tuple[str, float]] = []

    async def publish(self, message: TransportMessage, /) -> None:
        self.accepted.append((message.message_id, time.time()))
        await super().publish(message)


class CountingStore(SqlOutboxStore):
    __slots__ = ("promoted",)

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.promoted = 0

    async def promote(self, now: float, limit: int, /) -> Promotion:
        promotion = await super().promote(now, limit)
        self.promoted += promotion.count
        return promotion


def scheduled(n: int, due: float) -> OutboxMessage:
    return OutboxMessage(
        f"s-{n:05d}", "reminders", "Remind", b"{}", partition_key=f"k-{n % KEYS}",
        created_at=time.time(), next_attempt_at=due, status=OutboxStatus.SCHEDULED,
    )  # fmt: skip


async def write(database: Database, messages: Sequence[OutboxMessage]) -> None:
    for start in range(0, len(messages), 500):
        async with database.unit_of_work() as uow:
            await SqlOutboxWriter(uow).add(messages[start : start + 500])


@asynccontextmanager
async def relays(
    databases: Sequence[Database], transport: Recording
) -> AsyncIterator[list[CountingStore]]:
    stores = [CountingStore(database) for database in databases]
    settings = RelaySettings(batch_size=50, idle_poll_interval=1.0)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(OutboxRelay(store, transport, settings, name=f"relay-{i}").run(stop))
        for i, store in enumerate(stores)
    ]
    try:
        yield stores
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def published(transport: Recording, count: int) -> None:
    for _ in range(6000):
        if len(transport.accepted) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(transport.accepted)} of {count} published within 60 s")


@asynccontextmanager
async def three_databases(tmp_path: Path) -> AsyncIterator[list[Database]]:
    async with isolated_database(POSTGRES_URL, tmp_path) as isolated:
        # three processes' worth of connections, kept small (the server is shared)
        databases = [isolated.database(pool_size=3, max_overflow=2) for _ in range(3)]
        try:
            await databases[0].create_tables()
            yield databases
        finally:
            for database in databases:
                await database.dispose()


@pytest.mark.slow
async def test_three_relays_promote_and_publish_each_scheduled_message_once(
    tmp_path: Path,
) -> None:
    async with three_databases(tmp_path) as databases:
        start = time.time() + 2.0  # the relays are running (and asleep) by then
        messages = [scheduled(n, start + (n % WAVES) * 0.05) for n in range(MESSAGES)]
        random.Random(7).shuffle(messages)  # scheduling order is not due order
        await write(databases[0], messages)
        transport = Recording()
        async with relays(databases, transport) as stores:
            await published(transport, MESSAGES)
            await asyncio.sleep(0.3)  # a duplicate, if any, would come now
        assert sum(store.promoted for store in stores) == MESSAGES
        counts = await SqlOutboxStore(databases[0]).counts()
    times = Counter(message_id for message_id, _ in transport.accepted)
    assert sorted(times) == sorted(m.message_id for m in messages)
    assert set(times.values()) == {1}
    due = {m.message_id: m.next_attempt_at for m in messages}
    assert all(at >= due[message_id] for message_id, at in transport.accepted)
    scheduling_order = {m.message_id: n for n, m in enumerate(messages)}
    key_of = {m.message_id: m.partition_key for m in messages}
    for key in set(key_of.values()):
        order = [i for i, _ in transport.accepted if key_of[i] == key]
        expected = sorted(order, key=lambda i: (due[i], scheduling_order[i]))
        assert order == expected, f"{key} went out of due order"
    assert (counts[OutboxStatus.SCHEDULED], counts[OutboxStatus.DELIVERED]) == (0, MESSAGES)


@pytest.mark.slow
async def test_cancels_racing_relays_are_told_the_truth(tmp_path: Path) -> None:
    async with three_databases(tmp_path) as databases:
        start = time.time() + 1.0
        messages = [scheduled(n, start + n * 0.003) for n in range(600)]  # due one by one
        await write(databases[0], messages)
        transport = Recording()
        cancelled: dict[str, Cancellation] = {}
        rng = random.Random(3)

        async def cancel_when_due(database: Database, message: OutboxMessage) -> None:
            # about when it is due: while a relay promotes, claims or publishes it, or not
            await asyncio.sleep(
                max(0.0, message.next_attempt_at + rng.uniform(-0.01, 0.05) - time.time())
            )
            async with database.unit_of_work() as uow:
                cancelled[message.message_id] = await SqlOutboxWriter(uow).cancel(
                    message.message_id
                )

        async with relays(databases, transport):
            targets = messages[::2]
            await asyncio.gather(
                *(cancel_when_due(databases[n % 3], m) for n, m in enumerate(targets))
            )
            kept = len(messages) - sum(c is Cancellation.CANCELLED for c in cancelled.values())
            await published(transport, kept)
            await asyncio.sleep(0.3)  # a cancelled one, if it went out, would come now
    sent = Counter(message_id for message_id, _ in transport.accepted)
    assert set(sent.values()) == {1}
    for message_id, outcome in cancelled.items():
        assert outcome is not Cancellation.NOT_FOUND, message_id
        assert (outcome is Cancellation.ALREADY_PUBLISHED) == (message_id in sent), message_id
    untouched = {m.message_id for m in messages} - set(cancelled)
    assert untouched <= set(sent)


@pytest.mark.parametrize("seqscan", ["on", "off"])
async def test_a_relay_that_is_not_the_promoter_locks_no_row(
    postgres_database: Database, seqscan: str
) -> None:
    # The promotion lock is part of the rows' condition: whatever the plan, a relay that did
    # not get it locks nothing (a row it locked would be skipped by the promoter).
    from dockyard.sql._outbox.store import _PROMOTE_POSTGRES

    await write(postgres_database, [scheduled(n, time.time() - 1) for n in range(10)])
    lock = text("SELECT pg_advisory_xact_lock('dockyard_outbox_scheduled'::regclass::oid::bigint)")
    async with postgres_database.unit_of_work() as promoter:
        await promoter.connection.execute(lock)
        async with postgres_database.unit_of_work() as other:
            await other.connection.execute(text(f"SET LOCAL enable_seqscan = {seqscan}"))
            params = {"now": time.time(), "limit": 100}
            taken, moved, next_due = (
                await other.connection.execute(_PROMOTE_POSTGRES, params)
            ).one()
            assert (taken, moved, next_due) == (0, 0, None)  # the due ones are the promoter's
            async with postgres_database.unit_of_work() as third:
                free = text("SELECT position FROM dockyard_outbox_scheduled FOR UPDATE NOWAIT")
                assert len((await third.connection.execute(free)).all()) == 10
