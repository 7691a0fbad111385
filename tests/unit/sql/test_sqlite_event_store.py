from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import pytest_asyncio

from dockyard.eventsourcing import EventStore, SnapshotStore
from dockyard.exceptions import CorruptEventError
from dockyard.serialization import Serializer
from dockyard.sql import Database, SqlEventStore, SqlSnapshotStore
from dockyard.testing.contracts import (
    EventStoreContract,
    EventStoreFactory,
    SnapshotStoreContract,
    SnapshotStoreFactory,
)


@pytest.fixture
def database(sqlite_database: Database) -> Database:
    """The shared SQLite database (``tests/conftest.py``): these are SQLite's own paths."""
    return sqlite_database


@dataclass(frozen=True)
class Memo:
    text: str


class TestSqliteEventStore(EventStoreContract):
    @pytest_asyncio.fixture
    async def event_store_factory(self, database: Database) -> AsyncIterator[EventStoreFactory]:
        @asynccontextmanager
        async def session(serializer: Serializer) -> AsyncIterator[EventStore]:
            async with database.unit_of_work() as uow:
                yield SqlEventStore(uow, serializer)

        yield session


class TestSqliteSnapshotStore(SnapshotStoreContract):
    @pytest_asyncio.fixture
    async def snapshot_store_factory(
        self, database: Database
    ) -> AsyncIterator[SnapshotStoreFactory]:
        @asynccontextmanager
        async def session(serializer: Serializer) -> AsyncIterator[SnapshotStore]:
            async with database.unit_of_work() as uow:
                yield SqlSnapshotStore(uow, serializer)

        yield session


async def test_the_database_runs_in_wal_mode(database: Database) -> None:
    async with database.unit_of_work() as uow:
        mode = (await uow.connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
    assert mode == "wal"


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_an_in_memory_database_keeps_its_tables_across_units_of_work(url: str) -> None:
    database, serializer = Database(url), Serializer()
    try:
        await database.create_tables()
        async with database.unit_of_work() as uow:
            await SqlEventStore(uow, serializer).append("Memo-1", [Memo("kept")], 0)
        async with database.unit_of_work() as uow:
            (event,) = await SqlEventStore(uow, serializer).read_stream("Memo-1")
        assert event.data == Memo("kept")
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    ("column", "stored", "detail"),
    [
        ("event_id", "not-a-uuid", "event_id"),
        ("event_id", "", "event_id"),
        ("occurred_at", "yesterday", "occurred_at"),
        ("recorded_at", "2024-13-45 99:00:00", "recorded_at"),
    ],
)
async def test_a_row_with_a_malformed_column_reads_as_a_corrupt_event(
    database: Database, column: str, stored: str, detail: str
) -> None:
    serializer = Serializer()
    async with database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        await store.append("Memo-1", [Memo("a")], 0)
        result = await store.append("Memo-1", [Memo("b")], 1)
    async with database.unit_of_work() as uow:
        await uow.connection.exec_driver_sql(
            f"UPDATE dockyard_events SET {column} = ? WHERE global_position = ?",
            (stored, result.last_position),
        )
    async with database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        with pytest.raises(CorruptEventError) as in_stream:
            await store.read_stream("Memo-1")
        with pytest.raises(CorruptEventError) as in_log:
            await store.read_all()
        assert [e.data for e in await store.read_stream("Memo-1", limit=1)] == [Memo("a")]
    for error in (in_stream.value, in_log.value):
        assert (error.type_name, error.stream_id, error.stream_version, error.position) == (
            "Memo",
            "Memo-1",
            2,
            result.last_position,
        )
        assert f"cannot be decoded: its {detail} column holds {stored!r}" in str(error)
