"""Units of work beyond the pool hand their connections to one another, and never starve the pool.

When the pool has handed out all it may, a unit of work waits for a connection another unit of
work gives back and gets it from that one's hands, not through SQLAlchemy's pool (see
docs/design/unit-of-work.md, "Handing connections over"). Whoever waits in the pool itself (a
lease heartbeat, a ``LISTEN``, the user's ``engine.connect()``) comes first; a waiter that no
connection will come to any more goes to the pool; a cancelled waiter leaves nothing behind.
"""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard.sql import Database
from dockyard.testing.pytest import isolated_database
from integration._apps.services import POSTGRES_URL

pytestmark = pytest.mark.postgres

ROW = sa.text("INSERT INTO handover (n) VALUES (:n)")


@pytest_asyncio.fixture
async def small(tmp_path: Path) -> AsyncIterator[Database]:
    """A database whose pool hands out at most two connections."""
    async with isolated_database(POSTGRES_URL, tmp_path) as isolated:
        database = isolated.database(pool_size=2, max_overflow=0, pool_timeout=120)
        try:
            async with database.unit_of_work() as uow:
                await uow.connection.execute(sa.text("CREATE TABLE handover (n int)"))
            yield database
        finally:
            await database.dispose()


def _count_pool_checkouts(database: Database, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    engine = database.engine.sync_engine
    checkouts: list[int] = []
    connect = engine.connect

    def counted() -> Any:
        checkouts.append(1)
        return connect()

    monkeypatch.setattr(engine, "connect", counted)
    return checkouts


async def _write(database: Database, n: int) -> None:
    async with database.unit_of_work() as uow:
        await uow.connection.execute(ROW, {"n": n})


async def _hold(database: Database, n: int, held: asyncio.Event, release: asyncio.Event) -> None:
    """Write ``n`` and keep the unit of work (and its connection) until ``release``."""
    async with database.unit_of_work() as uow:
        await uow.connection.execute(ROW, {"n": n})
        held.set()
        await release.wait()


async def _rows(database: Database) -> list[int]:
    async with database.unit_of_work() as uow:
        found = await uow.connection.execute(sa.text("SELECT n FROM handover ORDER BY n"))
        return [n for (n,) in found]


async def test_units_of_work_beyond_the_pool_take_connections_from_one_another(
    small: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert small.connections.fast_path()
    checkouts = _count_pool_checkouts(small, monkeypatch)

    await asyncio.gather(*(_write(small, n) for n in range(40)))
    assert await _rows(small) == list(range(40))
    # two from the pool (its whole size); the other units of work got those two by hand
    assert len(checkouts) <= 2
    assert small.engine.sync_engine.pool.checkedout() <= 2  # type: ignore[attr-defined]


async def test_someone_waiting_in_the_pool_is_served_before_the_units_of_work(
    small: Database,
) -> None:
    """Units of work that keep coming would hand the two connections round for ever; a plain
    ``engine.connect()`` waiting in the pool gets the next one that comes back."""
    finished: list[int] = []
    served_after: list[int] = []

    async def keep_writing(task: int) -> None:
        for n in range(100):
            async with small.unit_of_work() as uow:
                await uow.connection.execute(ROW, {"n": task * 1000 + n})
            await asyncio.sleep(0)
        finished.append(task)

    writers = [asyncio.create_task(keep_writing(task)) for task in range(8)]
    # the pool's count has no event to wait on
    while small.engine.sync_engine.pool.checkedout() < 2:  # type: ignore[attr-defined]  # noqa: ASYNC110
        await asyncio.sleep(0)
    async with small.engine.connect() as connection:
        served_after.append(len(finished))
        assert (await connection.execute(sa.text("SELECT 1"))).scalar() == 1
    await asyncio.gather(*writers)
    assert served_after == [0]  # not only once every writer was done
    assert len(await _rows(small)) == 800


async def test_a_waiter_whose_connection_will_not_come_goes_to_the_pool(small: Database) -> None:
    """The connection a waiter counted on is lost (its backend terminated) while the other one
    stays in use: the waiter gets a new connection from the pool instead of waiting for
    ``pool_timeout``."""
    held = [asyncio.Event() for _ in range(2)]
    release = asyncio.Event()
    pids: list[int] = []

    async def hold(i: int) -> None:
        async with small.unit_of_work() as uow:
            found = await uow.connection.execute(sa.text("SELECT pg_backend_pid()"))
            pids.append(found.scalar_one())
            held[i].set()
            await release.wait()
            await uow.connection.execute(ROW, {"n": i})  # its backend is gone

    lost = asyncio.create_task(hold(0))
    await held[0].wait()
    async with small.unit_of_work() as in_use:  # the other connection, busy throughout
        await in_use.connection.execute(ROW, {"n": 1})
        waiter = asyncio.create_task(_write(small, 10))
        await asyncio.sleep(0.05)
        assert not waiter.done()
        url = POSTGRES_URL.replace("postgresql+asyncpg", "postgresql")
        admin = await asyncpg.connect(url)
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", pids[0])
        finally:
            await admin.close()
        release.set()
        with pytest.raises(Exception):  # noqa: B017, PT011 - whichever way the driver says it
            await lost
        await asyncio.wait_for(waiter, timeout=60)  # well under pool_timeout (120 s)
    assert await _rows(small) == [1, 10]


async def test_cancelled_waiters_leave_no_connection_behind(small: Database) -> None:
    held = [asyncio.Event() for _ in range(2)]
    release = asyncio.Event()
    holders = [asyncio.create_task(_hold(small, n, held[n], release)) for n in range(2)]
    for event in held:
        await event.wait()
    waiters = [asyncio.create_task(_write(small, n)) for n in range(10, 15)]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiters)
    for waiter in waiters[:4]:
        waiter.cancel()
    release.set()
    # the holders end in this turn of the loop: one hands its connection to the last waiter,
    # the other to a cancelled one, which gives it on (nobody is left: kept, or to the pool)
    await asyncio.gather(*holders)
    assert all(w.cancelled() for w in waiters[:4])
    await waiters[4]
    assert await _rows(small) == [0, 1, 14]
    pool = small.engine.sync_engine.pool
    await small.connections.close()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_waiter_cancelled_as_a_connection_reaches_it_hands_that_connection_on(
    small: Database,
) -> None:
    """Handed a connection and cancelled before it ran: the connection goes to the next waiter,
    not nowhere."""
    held = [asyncio.Event() for _ in range(2)]
    release = [asyncio.Event() for _ in range(2)]
    first, second = (asyncio.create_task(_hold(small, n, held[n], release[n])) for n in range(2))
    for event in held:
        await event.wait()
    cancelled = asyncio.create_task(_write(small, 10))
    await asyncio.sleep(0.05)
    served = asyncio.create_task(_write(small, 11))
    await asyncio.sleep(0.05)
    release[0].set()
    # one turn of the loop at a time, so `cancelled` is cancelled in the turn it is handed the
    # connection, before it runs (waiting on `first` would let it run first)
    while not first.done():  # noqa: ASYNC110
        await asyncio.sleep(0)
    cancelled.cancel()  # before it runs again: it holds a connection it never used
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(served, timeout=60)  # got it from the cancelled one
    release[1].set()
    await second
    assert await _rows(small) == [0, 1, 11]
    pool = small.engine.sync_engine.pool
    await small.connections.close()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]
