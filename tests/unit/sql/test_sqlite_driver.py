"""The SQLite hot paths: one hop to aiosqlite's thread, and the fallback if aiosqlite changes."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiosqlite
import pytest
import pytest_asyncio

from dockyard.eventsourcing import NO_STREAM
from dockyard.eventsourcing.store._codec import EventRow
from dockyard.sql import Database
from dockyard.sql import _sqlite_driver as lite
from dockyard.sql._unit_of_work import UnitOfWork


@pytest_asyncio.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    await database.create_tables()
    yield database
    await database.dispose()


class _PublicApiOnly:
    """An aiosqlite connection seen through its public API only (what a future one may be)."""

    def __init__(self, driver: Any) -> None:
        self._driver = driver

    async def execute_fetchall(self, sql: str, arguments: Any) -> Any:
        return await self._driver.execute_fetchall(sql, arguments)


def _rows(count: int, occurred_at: datetime) -> list[EventRow]:
    return [
        EventRow(uuid4(), "Memo", 1, b'{"n": %d}' % i, "c", None, occurred_at) for i in range(count)
    ]


async def test_aiosqlite_still_runs_our_functions_in_its_thread(database: Database) -> None:
    # If this fails, aiosqlite changed Connection._execute or Connection._connection: every
    # SQLite append and read silently went back to one hop per statement (slower, still right).
    assert callable(getattr(aiosqlite.Connection, "_execute", None))
    async with UnitOfWork(database) as uow:
        driver = await lite.aiosqlite_connection(uow.connection)
        done = await lite.in_driver_thread(
            driver, lambda sqlite, n: sqlite.execute(n).fetchone(), "SELECT 41 + 1"
        )
        assert done == ((42,),)


@pytest.mark.parametrize("one_hop", [True, False], ids=["one hop", "public API fallback"])
async def test_both_paths_append_and_read_the_same_rows(database: Database, one_hop: bool) -> None:
    recorded_at = datetime.now(UTC)
    rows = _rows(3, recorded_at)
    rows[1] = EventRow(
        rows[1].event_id, "Memo", 1, b"{}", None, "x", recorded_at - timedelta(days=1)
    )
    async with UnitOfWork(database) as uow:
        driver = await lite.aiosqlite_connection(uow.connection)
        if not one_hop:
            driver = _PublicApiOnly(driver)
        assert await lite.append_sqlite(driver, "Memo-1", rows, NO_STREAM, recorded_at) == (
            1,
            3,
            1,
            3,
        )
        assert await lite.append_sqlite(driver, "Memo-1", rows[:1], NO_STREAM, recorded_at) is None
        found = await lite.fetch_rows(driver, lite.READ_STREAM_FORWARDS, ("Memo-1", 0, -1))
    assert [(r[0], r[1], r[2], r[3]) for r in found] == [
        (n + 1, row.event_id, "Memo-1", n + 1) for n, row in enumerate(rows)
    ]
    assert [r[9] for r in found] == [row.occurred_at for row in rows]
    assert {r[10] for r in found} == {recorded_at}
    assert all(r[9].tzinfo is UTC for r in found)


async def test_a_big_append_is_split_into_statements_sqlite_accepts(database: Database) -> None:
    count = 2 * lite._MAX_ROWS + 5
    async with UnitOfWork(database) as uow:
        driver = await lite.aiosqlite_connection(uow.connection)
        done = await lite.append_sqlite(
            driver, "Memo-2", _rows(count, datetime.now(UTC)), 0, datetime.now(UTC)
        )
    assert done == (1, count, 1, count)


def test_stored_ids_read_back_as_equal_uuids() -> None:
    ids = [uuid4(), UUID(int=0), UUID(int=2**128 - 1)]
    read = [lite._uuid(i.hex) for i in ids]
    assert read == ids
    assert [hash(r) for r in read] == [hash(i) for i in ids]
    assert [str(r) for r in read] == [str(i) for i in ids]
    with pytest.raises(ValueError, match="invalid literal"):
        lite._uuid("not hex")
