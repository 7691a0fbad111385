"""read_all on PostgreSQL never skips a late commit (docs/design/event-store-ordering.md)."""

import asyncio
import random
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.eventsourcing import ANY, NO_STREAM, RecordedEvent
from dockyard.exceptions import TooManyEventsError
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore

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

    async def poll_until(self, count: int, seconds: float = 10) -> None:
        """Poll until ``count`` events were seen in all (other writers in the cluster can
        hold visibility back for a while), or ``seconds`` pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while len(self.seen) < count and loop.time() < deadline:
            if not await self.poll():
                await asyncio.sleep(0.02)


async def _take_xid(connection: AsyncConnection) -> None:
    # any write assigns the transaction id; this is the "wrote an app row first" case
    await connection.execute(sa.text("SELECT pg_current_xact_id()"))


async def test_an_early_transaction_that_commits_first_cannot_hide_a_later_one(
    postgres_database: Database, serializer: Serializer
) -> None:
    reader = Reader(postgres_database, serializer)
    early, late = postgres_database.unit_of_work(), postgres_database.unit_of_work()
    await early.begin()
    await late.begin()
    try:
        await _take_xid(early.connection)
        await _take_xid(late.connection)
        await SqlEventStore(late, serializer).append("Tick-late", [Ticked(2, 1)], NO_STREAM)
        await SqlEventStore(early, serializer).append("Tick-early", [Ticked(1, 1)], NO_STREAM)
        await early.commit()
        await reader.poll()
        await late.commit()
        await reader.poll_until(2)
    finally:
        await early.close()
        await late.close()
    assert [e.data for e in reader.seen] == [Ticked(1, 1), Ticked(2, 1)]


async def test_nothing_is_visible_to_read_all_while_an_older_writer_is_open(
    postgres_database: Database, serializer: Serializer
) -> None:
    reader = Reader(postgres_database, serializer)
    older = postgres_database.unit_of_work()
    await older.begin()
    try:
        await _take_xid(older.connection)
        async with postgres_database.unit_of_work() as uow:
            await SqlEventStore(uow, serializer).append("Tick-1", [Ticked(1, 1)], NO_STREAM)
        assert await reader.poll() == 0  # the older writer could still commit an earlier event
        await older.rollback()
        await reader.poll_until(1)
        assert len(reader.seen) == 1
    finally:
        await older.close()


async def test_concurrent_writers_and_a_polling_reader_lose_and_repeat_nothing(
    serializer: Serializer, postgres_database: Database
) -> None:
    database = Database(
        postgres_database.engine.url,
        pool_size=20,
        connect_args={"server_settings": {"search_path": await _schema(postgres_database)}},
    )
    writers, appends = 12, 15
    committed: list[uuid.UUID] = []
    done = asyncio.Event()
    reader = Reader(database, serializer)
    rng = random.Random(7)

    async def write(writer: int) -> None:
        for n in range(appends):
            async with database.unit_of_work() as uow:
                if rng.random() < 0.5:
                    await _take_xid(uow.connection)
                await asyncio.sleep(rng.random() / 200)
                store = SqlEventStore(uow, serializer)
                size = rng.randint(1, 3)
                stream = f"Tick-{writer}-{rng.randint(0, 3)}"
                await store.append(stream, [Ticked(writer, n)] * size, ANY)
                await asyncio.sleep(rng.random() / 200)
                if rng.random() < 0.15:
                    await uow.rollback()
                    continue
                await uow.commit()
                mine = await store.read_stream(stream, backwards=True, limit=size)
                committed.extend(e.event_id for e in mine)

    async def read() -> None:
        while not done.is_set():
            await reader.poll(limit=7)
            await asyncio.sleep(0)
        await reader.poll_until(len(committed))

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
    positions = [e.global_position for e in reader.seen]
    assert positions == sorted(positions)
    assert len(committed) > writers * appends


async def _schema(database: Database) -> str:
    async with database.unit_of_work() as uow:
        schema: str = (
            await uow.connection.execute(sa.text("SELECT current_schema()"))
        ).scalar_one()
    return schema


async def test_one_transaction_holds_at_most_65536_events(
    postgres_database: Database, serializer: Serializer
) -> None:
    async with postgres_database.unit_of_work() as uow:
        with pytest.raises(TooManyEventsError) as info:
            await SqlEventStore(uow, serializer).append(
                "Tick-big", [Ticked(0, 0)] * 65_537, NO_STREAM
            )
    assert (info.value.count, info.value.limit) == (65_537, 65_536)


async def test_appends_adding_up_past_the_limit_are_refused_by_the_statement(
    postgres_database: Database, serializer: Serializer
) -> None:
    async with postgres_database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        await store.append("Tick-a", [Ticked(0, 0)] * 40_000, NO_STREAM)
        with pytest.raises(TooManyEventsError, match="Cannot append 30000 events"):
            await store.append("Tick-b", [Ticked(0, 0)] * 30_000, NO_STREAM)
        await uow.rollback()
    async with postgres_database.unit_of_work() as uow:
        assert list(await SqlEventStore(uow, serializer).read_all()) == []


async def _xid_and_offsets(store: SqlEventStore, stream_id: str) -> list[tuple[int, int]]:
    return [
        (e.global_position >> 16, e.global_position & 0xFFFF)
        for e in await store.read_stream(stream_id)
    ]


async def test_positions_count_up_within_a_transaction_and_start_over_in_the_next(
    postgres_database: Database, serializer: Serializer
) -> None:
    async with postgres_database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        await store.append("Tick-a", [Ticked(0, 0), Ticked(0, 1)], NO_STREAM)
        with pytest.raises(Exception, match="expected"):  # a failed check: a gap, no duplicate
            await store.append("Tick-a", [Ticked(0, 2)], NO_STREAM)
        await uow.rollback()
        await store.append("Tick-a", [Ticked(0, 0)], NO_STREAM)
        await store.append("Tick-b", [Ticked(0, 1)], NO_STREAM)
        await uow.commit()
        await store.append("Tick-a", [Ticked(0, 2)], 1)
        # a commit behind the unit of work's back: the next transaction starts higher, still
        # unique in its own range
        await uow.connection.commit()
        await store.append("Tick-a", [Ticked(0, 3)], 2)
        await store.append("Tick-b", [Ticked(0, 4)], 1)
    async with postgres_database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        a, b = await _xid_and_offsets(store, "Tick-a"), await _xid_and_offsets(store, "Tick-b")
    first, second, third = a[0][0], a[1][0], a[2][0]
    assert first < second < third
    assert a == [(first, 0), (second, 0), (third, 1)]
    assert b == [(first, 1), (third, 2)]


async def test_an_append_past_the_count_continues_after_the_largest_position(
    postgres_database: Database, serializer: Serializer
) -> None:
    async with postgres_database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        await store.append("Tick-a", [Ticked(0, n) for n in range(3)], NO_STREAM)
        uow.positions_taken = 65_535  # as if the transaction had used almost all of its range
        await store.append("Tick-b", [Ticked(0, n) for n in range(2)], NO_STREAM)
        await store.append("Tick-c", [Ticked(0, 0)], NO_STREAM)
        offsets = [
            offset
            for stream_id in ("Tick-a", "Tick-b", "Tick-c")
            for _, offset in await _xid_and_offsets(store, stream_id)
        ]
    assert offsets == [0, 1, 2, 3, 4, 5]
