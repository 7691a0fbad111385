"""The global log on PostgreSQL: per-stream order, no skips, and only appenders hold readers
back (docs/design/event-store-ordering.md)."""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from dockyard.eventsourcing import ANY, NO_STREAM, RecordedEvent
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore, SqlUnitOfWork
from services import POSTGRES_URL

pytestmark = pytest.mark.postgres


@dataclass(frozen=True)
class Ticked:
    writer: int
    n: int


@pytest.fixture
def serializer() -> Serializer:
    return Serializer(TypeRegistry([Ticked]))


class Reader:
    """A catch-up reader: checkpoints on the last position it saw."""

    def __init__(self, database: Database, serializer: Serializer) -> None:
        self.database, self.serializer = database, serializer
        self.checkpoint = 0
        self.seen: list[RecordedEvent] = []

    async def poll(self, limit: int = 50) -> int:
        async with self.database.unit_of_work() as uow:
            page = await SqlEventStore(uow, self.serializer).read_all(self.checkpoint, limit)
        self.seen.extend(page)
        if page:
            assert page[-1].global_position > self.checkpoint
            self.checkpoint = page[-1].global_position
        return len(page)

    async def drain(self) -> None:
        while await self.poll():
            pass

    def versions(self, stream_id: str) -> list[int]:
        return [e.stream_version for e in self.seen if e.stream_id == stream_id]


async def _app_row(connection: AsyncConnection) -> None:
    """A write to an application table: the transaction now has an id and holds it open."""
    await connection.execute(sa.text("CREATE TEMP TABLE IF NOT EXISTS app_rows (n int)"))
    await connection.execute(sa.text("INSERT INTO app_rows VALUES (1)"))


@pytest_asyncio.fixture
async def open_transaction(postgres_database: Database) -> AsyncIterator[SqlUnitOfWork]:
    uow = postgres_database.unit_of_work()
    await uow.begin()
    try:
        yield uow
    finally:
        await uow.close()


async def test_a_transaction_that_began_early_appends_after_the_streams_newer_events(
    postgres_database: Database, serializer: Serializer, open_transaction: SqlUnitOfWork
) -> None:
    """The issue's recipe: T1 writes an app row (takes its xid), T2 appends v2 and commits,
    T1 appends v3 and commits. The log must read v1, v2, v3."""
    reader = Reader(postgres_database, serializer)
    async with postgres_database.unit_of_work() as uow:
        await SqlEventStore(uow, serializer).append("Tick-S", [Ticked(0, 1)], NO_STREAM)
    t1 = open_transaction
    await _app_row(t1.connection)
    async with postgres_database.unit_of_work() as t2:
        await SqlEventStore(t2, serializer).append("Tick-S", [Ticked(2, 2)], 1)
    await reader.drain()
    await SqlEventStore(t1, serializer).append("Tick-S", [Ticked(1, 3)], 2)
    await t1.commit()
    await reader.drain()
    assert reader.versions("Tick-S") == [1, 2, 3]
    async with postgres_database.unit_of_work() as uow:
        stream = await SqlEventStore(uow, serializer).read_stream("Tick-S")
    positions = [e.global_position for e in stream]
    assert positions == sorted(positions)


async def test_an_early_appender_that_commits_last_is_not_skipped(
    postgres_database: Database, serializer: Serializer, open_transaction: SqlUnitOfWork
) -> None:
    reader = Reader(postgres_database, serializer)
    early = open_transaction
    await SqlEventStore(early, serializer).append("Tick-early", [Ticked(1, 1)], NO_STREAM)
    async with postgres_database.unit_of_work() as late:
        await SqlEventStore(late, serializer).append("Tick-late", [Ticked(2, 1)], NO_STREAM)
    # the late event is committed, but the early appender may still commit below it
    assert await reader.poll() == 0
    await early.commit()
    await reader.drain()
    assert [e.data for e in reader.seen] == [Ticked(1, 1), Ticked(2, 1)]


async def test_a_rolled_back_savepoint_does_not_unannounce_the_transaction(
    postgres_database: Database, serializer: Serializer, open_transaction: SqlUnitOfWork
) -> None:
    reader = Reader(postgres_database, serializer)
    t1 = open_transaction
    store = SqlEventStore(t1, serializer)
    await t1.connection.execute(sa.text("SAVEPOINT s"))
    await store.append("Tick-a", [Ticked(1, 0)], NO_STREAM)  # announces inside the savepoint
    await t1.connection.execute(sa.text("ROLLBACK TO SAVEPOINT s"))  # ...which releases it
    await store.append("Tick-b", [Ticked(1, 1)], NO_STREAM)
    async with postgres_database.unit_of_work() as t2:
        await SqlEventStore(t2, serializer).append("Tick-c", [Ticked(2, 1)], NO_STREAM)
    assert await reader.poll() == 0, "read past an open appender"
    await t1.commit()
    await reader.drain()
    assert [e.data for e in reader.seen] == [Ticked(1, 1), Ticked(2, 1)]


async def test_transactions_that_never_append_hold_nobody_back(
    postgres_database: Database, serializer: Serializer, open_transaction: SqlUnitOfWork
) -> None:
    """A writing transaction in another database and one on application tables of this one,
    both open while events are appended: the events are readable at once."""
    other_database = create_async_engine(POSTGRES_URL.replace("/test", "/postgres"))
    reader = Reader(postgres_database, serializer)
    try:
        async with other_database.connect() as elsewhere:
            await _app_row(elsewhere)  # a migration, a batch job, a neighbouring app
            await _app_row(open_transaction.connection)  # only application tables
            for n in range(3):
                async with postgres_database.unit_of_work() as uow:
                    await SqlEventStore(uow, serializer).append(f"Tick-{n}", [Ticked(0, n)], ANY)
                assert await reader.poll() == 1, "a non-appending transaction held readers back"
            async with postgres_database.unit_of_work() as uow:
                store = SqlEventStore(uow, serializer)
                assert await store.open_appends() == []
            await elsewhere.rollback()
    finally:
        await other_database.dispose()


async def test_an_open_appender_is_reported_with_its_age(
    postgres_database: Database, serializer: Serializer, open_transaction: SqlUnitOfWork
) -> None:
    appended = await SqlEventStore(open_transaction, serializer).append(
        "Tick-open", [Ticked(1, 1)], NO_STREAM
    )
    async with postgres_database.unit_of_work() as uow:
        pid = (await uow.connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
        assert pid is not None
        (blocker,) = await SqlEventStore(uow, serializer).open_appends()
    assert blocker.position_bound <= appended.first_position
    assert blocker.age >= 0
    assert blocker.pid != pid
    assert blocker.state in {"idle in transaction", "active"}


async def test_an_appender_is_reported_once_however_often_it_appended(
    postgres_database: Database, serializer: Serializer, open_transaction: SqlUnitOfWork
) -> None:
    store = SqlEventStore(open_transaction, serializer)
    first = await store.append("Tick-1", [Ticked(1, 1)], NO_STREAM)
    for n in range(2, 5):
        await store.append(f"Tick-{n}", [Ticked(n, 1)], NO_STREAM)
    async with postgres_database.unit_of_work() as uow:
        listed = await SqlEventStore(uow, serializer).open_appends()
    assert len(listed) == 1, listed
    assert listed[0].position_bound <= first.first_position


async def test_concurrent_writers_keep_each_streams_order_and_lose_nothing(
    serializer: Serializer, postgres_database: Database
) -> None:
    """Writers that often take their xid early, append to a few shared streams (so the
    recipe's interleaving keeps happening), sometimes roll back; a reader polls meanwhile."""
    database = Database(
        postgres_database.engine.url,
        pool_size=8,
        connect_args={"server_settings": {"search_path": await _schema(postgres_database)}},
    )
    writers, appends, streams = 6, 20, 3
    committed: list[uuid.UUID] = []
    done = asyncio.Event()
    reader = Reader(database, serializer)
    rng = random.Random(7)

    async def write(writer: int) -> None:
        for n in range(appends):
            async with database.unit_of_work() as uow:
                if rng.random() < 0.5:
                    await _app_row(uow.connection)
                await asyncio.sleep(rng.random() / 200)
                store = SqlEventStore(uow, serializer)
                size = rng.randint(1, 3)
                stream = f"Tick-{rng.randrange(streams)}"
                result = await store.append(stream, [Ticked(writer, n)] * size, ANY)
                await asyncio.sleep(rng.random() / 200)
                if rng.random() < 0.15:
                    await uow.rollback()
                    continue
                await uow.commit()
                mine = await store.read_stream(stream, from_version=result.first_version)
                committed.extend(e.event_id for e in mine[:size])

    async def read() -> None:
        while not done.is_set():
            await reader.poll(limit=7)
            await asyncio.sleep(0)
        await reader.drain()

    try:
        reading = asyncio.create_task(read())
        await asyncio.gather(*(write(w) for w in range(writers)))
        done.set()
        await reading
    finally:
        await database.dispose()
    ids = [e.event_id for e in reader.seen]
    assert len(ids) == len(set(ids)), "an event was read twice"
    assert set(ids) == set(committed), "a committed event was skipped (or a rolled back one read)"
    for s in range(streams):
        versions = reader.versions(f"Tick-{s}")
        assert versions == list(range(1, len(versions) + 1)), f"Tick-{s} out of order"
    assert len(committed) > writers * appends


async def test_positions_increase_with_versions_within_an_append(
    postgres_database: Database, serializer: Serializer
) -> None:
    async with postgres_database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        await store.append("Tick-a", [Ticked(0, n) for n in range(50)], NO_STREAM)
        await store.append("Tick-b", [Ticked(1, 0)], NO_STREAM)
        await store.append("Tick-a", [Ticked(0, n) for n in range(50, 60)], 50)
        events = await store.read_stream("Tick-a")
    positions = [e.global_position for e in events]
    assert [e.data.n for e in events] == list(range(60))  # type: ignore[attr-defined]
    assert positions == sorted(positions)
    assert len(set(positions)) == 60


async def test_reading_the_log_in_a_repeatable_read_transaction_is_refused(
    postgres_database: Database, serializer: Serializer, open_transaction: SqlUnitOfWork
) -> None:
    """Its snapshot may predate the horizon: it could skip events. Refused, with why."""
    await open_transaction.connection.execute(
        sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    )
    with pytest.raises(Exception, match="READ COMMITTED"):
        await SqlEventStore(open_transaction, serializer).read_all()


async def _schema(database: Database) -> str:
    async with database.unit_of_work() as uow:
        schema: str = (
            await uow.connection.execute(sa.text("SELECT current_schema()"))
        ).scalar_one()
    return schema


async def test_a_database_of_an_earlier_version_continues_above_its_positions(
    postgres_database: Database, serializer: Serializer
) -> None:
    """Earlier versions numbered events ``(xid << 16) | n``: create_tables moves the sequence
    past them, so new events sort after the old ones."""
    old = (123_456 << 16) | 3
    async with postgres_database.unit_of_work() as uow:
        await uow.connection.execute(
            sa.text(
                "INSERT INTO dockyard_events (global_position, event_id, stream_id,"
                " stream_version, type_name, schema_version, data, occurred_at, recorded_at)"
                " VALUES (:p, gen_random_uuid(), 'Tick-old', 1, 'Ticked', 1, :d, now(), now())"
            ),
            {"p": old, "d": b'{"writer":0,"n":0}'},
        )
        await uow.connection.execute(
            sa.text("INSERT INTO dockyard_streams (stream_id, version) VALUES ('Tick-old', 1)")
        )
    await postgres_database.create_tables()
    async with postgres_database.unit_of_work() as uow:
        result = await SqlEventStore(uow, serializer).append("Tick-old", [Ticked(0, 1)], 1)
    assert result.first_position > old
    reader = Reader(postgres_database, serializer)
    await reader.drain()
    assert reader.versions("Tick-old") == [1, 2]
