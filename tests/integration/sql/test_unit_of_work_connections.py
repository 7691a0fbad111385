"""Units of work keep their connection for the next one, and never hand on a dirty one.

See docs/design/unit-of-work.md: the transaction runs on the driver, a connection whose
commit or rollback finished goes to an idle list, anything else is closed for good.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy import event

from dockyard.eventsourcing import ANY, NO_STREAM, EventStore
from dockyard.exceptions import StoreUnavailableError
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore
from dockyard.testing.contracts import EventStoreContract, EventStoreFactory
from faults import FaultProxy
from integration._apps.services import POSTGRES_URL


@dataclass(frozen=True)
class Noted:
    text: str


serializer = Serializer(TypeRegistry([Noted]))


async def _identity(database: Database) -> object:
    """Which server connection a unit of work ran on."""
    async with database.unit_of_work() as uow:
        if database.dialect == "postgresql":
            return (await uow.connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar()
        return id(await uow.driver())


async def _texts(database: Database, stream_id: str) -> list[str]:
    async with database.unit_of_work() as uow:
        events = await SqlEventStore(uow, serializer).read_stream(stream_id)
    return [e.data.text for e in events]  # type: ignore[attr-defined]


async def test_the_next_unit_of_work_runs_on_the_same_connection(database: Database) -> None:
    assert database.connections.fast_path()
    first = await _identity(database)
    async with database.unit_of_work() as uow:
        await SqlEventStore(uow, serializer).append("Noted-1", [Noted("a")], NO_STREAM)
    assert await _identity(database) == first


async def test_units_of_work_at_once_each_get_their_own_connection(database: Database) -> None:
    pool = database.engine.sync_engine.pool
    both_in = asyncio.Barrier(2)

    async def note(n: int) -> None:
        async with database.unit_of_work() as uow:
            await both_in.wait()  # both have a connection before either writes
            await SqlEventStore(uow, serializer).append(f"Noted-{n}", [Noted(str(n))], NO_STREAM)

    await asyncio.gather(note(1), note(2))
    assert [await _texts(database, f"Noted-{n}") for n in (1, 2)] == [["1"], ["2"]]
    assert pool.checkedout() == 2  # type: ignore[attr-defined]  # both kept, none leaked
    await database.dispose()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_a_commit_through_the_connection_commits_what_the_driver_began(
    database: Database,
) -> None:
    async with database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer)
        await store.append("Noted-1", [Noted("a")], NO_STREAM)  # on the driver
        assert uow.connection.in_transaction()
        await uow.connection.commit()
        await store.append("Noted-1", [Noted("b")], 1)  # in a new transaction, not autocommit
        await uow.connection.rollback()
        await uow.connection.execute(sa.text("SELECT 1"))  # SQLAlchemy begins a new one
        await store.append("Noted-1", [Noted("c")], 1)
        await uow.connection.rollback()
        assert uow.connection.in_transaction()  # the next one, handed out without I/O
        await store.append("Noted-1", [Noted("d")], 1)
    assert await _texts(database, "Noted-1") == ["a", "d"]


@pytest.mark.parametrize("yields_before_cancel", range(6))
async def test_a_cancelled_unit_of_work_leaves_nothing_behind(
    database: Database, yields_before_cancel: int
) -> None:
    started = asyncio.Event()

    async def append_then_wait() -> None:
        async with database.unit_of_work() as uow:
            started.set()
            await SqlEventStore(uow, serializer).append("Noted-1", [Noted("lost")], NO_STREAM)
            await asyncio.sleep(10)

    task = asyncio.create_task(append_then_wait())
    await started.wait()
    for _ in range(yields_before_cancel):  # cancel at a different point each time
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # whichever connection comes next is clean: not in a transaction, and can write
    async with database.unit_of_work() as uow:
        await SqlEventStore(uow, serializer).append("Noted-1", [Noted("kept")], NO_STREAM)
    assert await _texts(database, "Noted-1") == ["kept"]


class PauseAt:
    """Stops one task at one asyncpg call (``BEGIN``, the append's ``fetch``, ``COMMIT``),
    before the statement is sent or after its answer came back, until it is cancelled: a
    cancellation at every await between asyncpg and SQLAlchemy's bookkeeping."""

    def __init__(self, statement: str, when: str) -> None:
        self.statement, self.when = statement, when
        self.victim: asyncio.Task[None] | None = None
        self.reached = asyncio.Event()

    def wrap(self, real: Any) -> Any:
        async def call(connection: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if (
                asyncio.current_task() is not self.victim
                or self.reached.is_set()
                or not query.lstrip().upper().startswith(self.statement)
            ):
                return await real(connection, query, *args, **kwargs)
            if self.when == "before":
                self.reached.set()
                await asyncio.Event().wait()  # until cancelled
            result = await real(connection, query, *args, **kwargs)
            self.reached.set()
            await asyncio.Event().wait()
            return result

        return call


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["driver", "pool"])
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("statement", ["BEGIN", "WITH", "COMMIT"])
async def test_a_unit_of_work_cancelled_at_any_await_hands_on_a_clean_connection(
    postgres_database: Database,
    monkeypatch: pytest.MonkeyPatch,
    statement: str,
    when: str,
    path: str,
) -> None:
    database = postgres_database
    if path == "pool":  # a listener on checkout turns the driver path off
        event.listen(database.engine.sync_engine, "checkout", lambda *_: None)
    assert database.connections.fast_path() is (path == "driver")
    pause = PauseAt(statement, when)
    monkeypatch.setattr(asyncpg.Connection, "execute", pause.wrap(asyncpg.Connection.execute))
    monkeypatch.setattr(asyncpg.Connection, "fetch", pause.wrap(asyncpg.Connection.fetch))

    async def append(text: str) -> None:
        async with database.unit_of_work() as uow:
            await SqlEventStore(uow, serializer).append("Noted-1", [Noted(text)], ANY)

    pause.victim = asyncio.create_task(append("lost"))
    await pause.reached.wait()
    pause.victim.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pause.victim
    await append("kept")  # on whichever connection comes next: it must be clean
    async with database.engine.connect() as other:  # never the one just used
        query = "SELECT data FROM dockyard_events ORDER BY global_position"
        texts = [json.loads(data)["text"] for data in await other.scalars(sa.text(query))]
    # a COMMIT whose answer came back committed, whatever its caller saw
    assert texts == (["lost", "kept"] if (statement, when) == ("COMMIT", "after") else ["kept"])


async def test_a_failed_commit_closes_the_connection_for_good(
    database: Database,
) -> None:
    async with database.engine.begin() as connection:
        await connection.exec_driver_sql(
            "CREATE TABLE seats (seat INTEGER, FOREIGN KEY (seat) REFERENCES seat_numbers (n) "
            "DEFERRABLE INITIALLY DEFERRED)"
            if database.dialect == "sqlite"
            else "CREATE TABLE seats (seat INTEGER UNIQUE DEFERRABLE INITIALLY DEFERRED)"
        )
        if database.dialect == "sqlite":
            await connection.exec_driver_sql("CREATE TABLE seat_numbers (n INTEGER PRIMARY KEY)")
    before = await _identity(database)

    async def break_a_deferred_constraint() -> None:
        async with database.unit_of_work() as uow:
            await SqlEventStore(uow, serializer).append("Noted-1", [Noted("a")], NO_STREAM)
            statement = "INSERT INTO seats VALUES (7)"
            await uow.connection.exec_driver_sql(statement)
            if database.dialect == "postgresql":
                await uow.connection.exec_driver_sql(statement)  # checked at commit

    with pytest.raises(sa.exc.IntegrityError):  # as SQLAlchemy raises it, whichever path
        await break_a_deferred_constraint()
    assert await _identity(database) != before
    assert await _texts(database, "Noted-1") == []


@pytest.mark.postgres
async def test_a_connection_killed_while_idle_fails_one_unit_of_work_only(
    postgres_database: Database,
) -> None:
    """Killed before the client heard of it: the unit of work it is handed to fails."""
    pid = await _identity(postgres_database)
    async with postgres_database.engine.connect() as admin:
        await admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    failed: StoreUnavailableError | None = None
    try:
        async with postgres_database.unit_of_work() as uow:
            await SqlEventStore(uow, serializer).append("Noted-1", [Noted("a")], NO_STREAM)
    except StoreUnavailableError as error:
        failed = error
    if failed is not None:
        assert failed.operation == "append to stream `Noted-1`"
    # else the client had heard of it already: see the next test
    appended = [] if failed is not None else ["a"]
    async with postgres_database.unit_of_work() as uow:
        await SqlEventStore(uow, serializer).append("Noted-2", [Noted("b")], NO_STREAM)
    assert await _texts(postgres_database, "Noted-1") == appended
    assert await _texts(postgres_database, "Noted-2") == ["b"]


@pytest.mark.postgres
async def test_a_connection_the_client_knows_was_killed_is_never_handed_out(
    postgres_database: Database,
) -> None:
    """Each idle connection killed in one outage would otherwise fail a unit of work of its
    own, one after another, long after (a service reporting the outage again and again)."""
    pid = await _identity(postgres_database)
    async with postgres_database.engine.connect() as admin:
        await admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        gone = sa.text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid")
        async with asyncio.timeout(30):
            while not await admin.scalar(gone, {"pid": pid}):
                await admin.commit()  # a fresh view of pg_stat_activity
                await asyncio.sleep(0.01)
    await asyncio.sleep(1)  # generous: the client reads the closed socket as soon as it closes
    async with postgres_database.unit_of_work() as uow:
        await SqlEventStore(uow, serializer).append("Noted-1", [Noted("a")], NO_STREAM)
    assert await _identity(postgres_database) != pid
    assert await _texts(postgres_database, "Noted-1") == ["a"]


@pytest.mark.postgres
async def test_a_unit_of_work_cancelled_on_a_stalled_server_waits_for_no_rollback() -> None:
    """A forced stop cancels it: no ROLLBACK goes to a server that does not answer (it would
    wait for ever); the connection goes instead, and the server rolls back what it left."""
    async with FaultProxy(5432) as proxy:
        database = Database(POSTGRES_URL.replace(":5432/", f":{proxy.port}/"))
        in_transaction = asyncio.Event()

        async def stalled() -> None:
            async with database.unit_of_work() as uow:
                await uow.connection.execute(sa.text("SELECT 1"))
                proxy.stall()
                in_transaction.set()
                await asyncio.Event().wait()  # cancelled here, its transaction open

        task = asyncio.create_task(stalled())
        try:
            await asyncio.wait_for(in_transaction.wait(), 30)
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=15)  # generous: a close waits 2 s
            assert task in done, "the cancelled unit of work waits for its ROLLBACK"
            assert task.cancelled()
        finally:
            task.cancel()
            await proxy.restore()
            await database.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["driver", "pool"])
async def test_a_connection_lost_under_a_statement_ends_quietly(
    postgres_database: Database, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    database = postgres_database
    if path == "pool":
        event.listen(database.engine.sync_engine, "checkout", lambda *_: None)
    pid = await _identity(database)

    async def lose_the_connection() -> None:
        async with database.unit_of_work() as uow:
            await SqlEventStore(uow, serializer).append("Noted-1", [Noted("lost")], NO_STREAM)
            async with database.engine.connect() as admin:
                await admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await uow.connection.execute(sa.text("SELECT 1"))  # SQLAlchemy invalidates it

    with caplog.at_level(logging.DEBUG, logger="dockyard.sql"), pytest.raises(sa.exc.DBAPIError):
        await lose_the_connection()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert await _identity(database) != pid
    async with database.unit_of_work() as uow:
        await SqlEventStore(uow, serializer).append("Noted-1", [Noted("kept")], NO_STREAM)
    assert await _texts(database, "Noted-1") == ["kept"]


async def test_a_listener_on_the_engine_turns_the_pools_own_path_back_on(
    database: Database,
) -> None:
    seen: list[str] = []

    def on_commit(connection: Any) -> None:
        seen.append("commit")

    event.listen(database.engine.sync_engine, "commit", on_commit)
    try:
        assert not database.connections.fast_path()
        async with database.unit_of_work() as uow:
            await SqlEventStore(uow, serializer).append("Noted-1", [Noted("a")], NO_STREAM)
        assert seen == ["commit"]
        assert await _texts(database, "Noted-1") == ["a"]
    finally:
        event.remove(database.engine.sync_engine, "commit", on_commit)


@pytest.mark.parametrize("option", [{"pool_pre_ping": True}, {"pool_recycle": 3600}])
async def test_a_pool_that_checks_connections_on_checkout_keeps_doing_so(
    tmp_path: Path, option: dict[str, Any]
) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", **option)
    try:
        await database.create_tables()
        assert not database.connections.fast_path()
        async with database.unit_of_work() as uow:
            await SqlEventStore(uow, serializer).append("Noted-1", [Noted("a")], NO_STREAM)
        assert await _texts(database, "Noted-1") == ["a"]
        assert database.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await database.dispose()


class TestEventStoreThroughThePool(EventStoreContract):
    """Units of work that check out, begin, commit and return through SQLAlchemy's pool: what
    runs when a listener or a pool option asks for it (docs/design/unit-of-work.md)."""

    @pytest_asyncio.fixture
    async def event_store_factory(self, database: Database) -> AsyncIterator[EventStoreFactory]:
        def on_checkout(*_: object) -> None:
            checkouts.append(1)

        checkouts: list[int] = []
        event.listen(database.engine.sync_engine, "checkout", on_checkout)
        assert not database.connections.fast_path()

        @asynccontextmanager
        async def session(events_serializer: Serializer) -> AsyncIterator[EventStore]:
            async with database.unit_of_work() as uow:
                yield SqlEventStore(uow, events_serializer)

        yield session
        event.remove(database.engine.sync_engine, "checkout", on_checkout)
        assert checkouts
