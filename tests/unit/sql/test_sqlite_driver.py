"""The SQLite hot paths: one hop to aiosqlite's thread, and the fallback if aiosqlite changes."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import RFC_4122, UUID, uuid4

import aiosqlite
import pytest

import dockyard.sql._driver
from dockyard.eventsourcing import NO_STREAM
from dockyard.eventsourcing._codec import EventRow
from dockyard.serialization import Serializer
from dockyard.sql import Database, SqlEventStore
from dockyard.sql._driver import in_driver_thread
from dockyard.sql._eventsourcing import sqlite as lite
from dockyard.sql._unit_of_work import SqlUnitOfWork


@pytest.fixture
def database(sqlite_database: Database) -> Database:
    """The shared SQLite database (``tests/conftest.py``): these are SQLite's own paths."""
    return sqlite_database


@pytest.fixture(params=["one hop", "public API fallback"])
def one_hop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both paths: aiosqlite as it is, and as a future one without ``_execute`` may be."""
    if request.param == "one hop":
        return True
    monkeypatch.setattr(dockyard.sql._driver, "_sqlite3_of", lambda driver: None)
    return False


@dataclass(frozen=True)
class Memo:
    text: str


def _rows(count: int, occurred_at: datetime) -> list[EventRow]:
    return [
        EventRow(uuid4(), "Memo", 1, b'{"n": %d}' % i, "c", None, occurred_at) for i in range(count)
    ]


async def test_aiosqlite_still_runs_our_functions_in_its_thread(database: Database) -> None:
    # If this fails, aiosqlite changed Connection._execute or Connection._connection: every
    # SQLite append and read silently went back to one hop per statement (slower, still right).
    assert callable(getattr(aiosqlite.Connection, "_execute", None))
    async with SqlUnitOfWork(database) as uow:
        driver = await uow.driver()
        done = await in_driver_thread(
            driver, lambda sqlite, n: sqlite.execute(n).fetchone(), "SELECT 41 + 1"
        )
        assert done == ((42,),)


async def test_both_paths_append_and_read_the_same_rows(database: Database, one_hop: bool) -> None:
    recorded_at = datetime.now(UTC)
    rows = _rows(3, recorded_at)
    rows[1] = EventRow(
        rows[1].event_id, "Memo", 1, b"{}", None, "x", recorded_at - timedelta(days=1)
    )
    async with SqlUnitOfWork(database) as uow:
        assert await lite.append_sqlite(uow, "Memo-1", rows, NO_STREAM, recorded_at) == (1, 3, 1, 3)
        assert await lite.append_sqlite(uow, "Memo-1", rows[:1], NO_STREAM, recorded_at) is None
        found = await lite.fetch_rows(uow, lite.READ_STREAM_FORWARDS, ("Memo-1", 0, -1))
        assert (await uow.run_in_driver_thread(lambda sqlite: 1) is not None) is one_hop
    assert [(r[0], r[1], r[2], r[3]) for r in found] == [
        (n + 1, row.event_id, "Memo-1", n + 1) for n, row in enumerate(rows)
    ]
    assert [r[9] for r in found] == [row.occurred_at for row in rows]
    assert {r[10] for r in found} == {recorded_at}
    assert all(r[9].tzinfo is UTC for r in found)


async def test_positions_returned_are_the_stored_ones_even_after_deleting_the_newest(
    database: Database, one_hop: bool
) -> None:
    now, count = datetime.now(UTC), 5_000
    async with SqlUnitOfWork(database) as uow:
        await lite.append_sqlite(uow, "Memo-1", _rows(3, now), NO_STREAM, now)
        await uow.connection.exec_driver_sql("DELETE FROM dockyard_events")
        done = await lite.append_sqlite(uow, "Memo-2", _rows(count, now), 0, now)
        found = await lite.fetch_rows(uow, lite.READ_STREAM_FORWARDS, ("Memo-2", 0, -1))
    assert done == (1, count, 4, count + 3)
    assert [r[0] for r in found] == list(range(4, count + 4))


def test_stored_ids_read_back_as_equal_uuids() -> None:
    ids = [uuid4(), UUID(int=0), UUID(int=2**128 - 1)]
    read = [lite._uuid(i.hex) for i in ids]
    assert read == ids
    assert [hash(r) for r in read] == [hash(i) for i in ids]
    assert [str(r) for r in read] == [str(i) for i in ids]
    with pytest.raises(ValueError, match="invalid literal"):
        lite._uuid("not hex")


async def test_generated_event_ids_are_distinct_random_uuids(database: Database) -> None:
    async with SqlUnitOfWork(database) as uow:
        store = SqlEventStore(uow, Serializer())
        await store.append("Memo-3", [Memo(str(n)) for n in range(500)], NO_STREAM)
        ids = [event.event_id for event in await store.read_stream("Memo-3")]
    assert len(set(ids)) == 500
    assert {(i.version, i.variant) for i in ids} == {(4, RFC_4122)}
    assert all(UUID(str(i)) == i for i in ids)


async def test_a_first_statement_through_sqlalchemy_runs_inside_the_transaction(
    database: Database,
) -> None:
    # `uow.connection` is handed out inside a transaction begun without I/O; the engine's
    # statement hook sends BEGIN IMMEDIATE before the first statement (not autocommit)
    async def write_then_fail() -> None:
        async with SqlUnitOfWork(database) as uow:
            driver: Any = (await uow.connection.get_raw_connection()).driver_connection
            assert uow.connection.in_transaction()
            assert not driver.in_transaction
            await uow.connection.exec_driver_sql("CREATE TABLE memos (text TEXT)")
            assert driver.in_transaction
            raise LookupError

    with pytest.raises(LookupError):
        await write_then_fail()
    async with database.engine.connect() as connection:
        found = await connection.exec_driver_sql("SELECT name FROM sqlite_master")
        assert "memos" not in found.scalars().all()


async def test_the_statement_hook_begins_only_what_a_unit_of_work_handed_out(
    database: Database,
) -> None:
    # SQLite's escape hatch for VACUUM, which cannot run in a transaction, stays open
    async with database.engine.connect() as connection:
        await connection.exec_driver_sql("COMMIT")  # ends the BEGIN the engine's hook sent
        await connection.exec_driver_sql("VACUUM")
