"""A ``Session`` built by hand on ``uow.connection`` joins the unit of work's transaction, and
whatever else ends that transaction makes the unit of work refuse to commit (docs/orm.md).

Each test runs on both dialects and three ways: the driver fast path, the pool path, and the
pool path with a ``begin`` hook of the user's that does I/O (which SQLAlchemy runs only in
its greenlet, so the unit of work cannot begin a transaction for it outside one).
"""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from dockyard.eventsourcing import ANY
from dockyard.exceptions import TransactionEndedError
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore, SqlUnitOfWork

notes = sa.Table("hand_built_notes", sa.MetaData(), sa.Column("note_id", sa.Text, primary_key=True))


@dataclass(frozen=True)
class Noted:
    note_id: str


serializer = Serializer(TypeRegistry([Noted]))


def _checkout(*_: object) -> None:
    pass


def _begin(connection: sa.Connection) -> None:
    connection.exec_driver_sql("SELECT 1")  # I/O: SQLAlchemy runs it in its greenlet


_HOOKS: dict[str, tuple[str, Callable[..., None]]] = {
    "pool": ("checkout", _checkout),
    "pool, a begin hook": ("begin", _begin),
}


@pytest.fixture(params=["driver", *_HOOKS])
def path(request: pytest.FixtureRequest) -> str:
    """Which way the unit of work runs its transaction."""
    return str(request.param)


@pytest_asyncio.fixture
async def database(database: Database, path: str) -> AsyncIterator[Database]:
    async with database.engine.begin() as connection:
        await connection.run_sync(notes.metadata.create_all)
    engine = database.engine.sync_engine
    hook = _HOOKS.get(path)
    if hook is not None:
        event.listen(engine, *hook)
    assert database.connections.fast_path() is (hook is None)
    yield database
    if hook is not None:
        event.remove(engine, *hook)


async def _note(uow: SqlUnitOfWork, note_id: str) -> None:
    """An event on the driver and, on SQLAlchemy, nothing: what a handler appends."""
    await SqlEventStore(uow, serializer).append(f"Note-{note_id}", [Noted(note_id)], ANY)


async def _stored(database: Database) -> tuple[list[str], list[str]]:
    async with database.unit_of_work() as uow:
        query = sa.select(notes.c.note_id).order_by(notes.c.note_id)
        rows = (await uow.connection.execute(query)).scalars().all()
        events = await SqlEventStore(uow, serializer).read_all()
    return list(rows), [e.data.note_id for e in events]  # type: ignore[attr-defined]


async def _add_by_hand(uow: SqlUnitOfWork, note_id: str, end: str) -> None:
    session = AsyncSession(bind=uow.connection)
    try:
        await session.execute(sa.insert(notes).values(note_id=note_id))
        await (session.commit() if end == "commit" else session.rollback())
    finally:
        await session.close()


async def test_the_connection_is_handed_out_inside_the_transaction(
    database: Database, path: str
) -> None:
    async with database.unit_of_work() as uow:
        assert uow.connection.in_transaction()  # before any statement
        await uow.commit()
        # the next one too, unless a begin hook of the user's must run (in SQLAlchemy's greenlet)
        assert uow.connection.in_transaction() is (path != "pool, a begin hook")


@pytest.mark.parametrize("fails", [False, True])
async def test_a_session_built_by_hand_commits_with_the_unit_of_work(
    database: Database, fails: bool
) -> None:
    async def write() -> None:
        async with database.unit_of_work() as uow:
            await _add_by_hand(uow, "a", "commit")  # commit() and close(): the uow's is open
            await _note(uow, "a")
            if fails:
                raise LookupError

    if fails:
        with pytest.raises(LookupError):
            await write()
        assert await _stored(database) == ([], [])
    else:
        await write()
        assert await _stored(database) == (["a"], ["a"])


async def test_a_rollback_by_a_session_built_by_hand_fails_the_commit(database: Database) -> None:
    async def write() -> None:
        async with database.unit_of_work() as uow:
            await _note(uow, "lost")
            await _add_by_hand(uow, "b", "rollback")  # rolls back the uow's transaction
            await _note(uow, "b")  # in a new one: committing it would keep half

    with pytest.raises(TransactionEndedError, match="ended by something other than"):
        await write()
    assert await _stored(database) == ([], [])
    async with database.unit_of_work() as uow:  # the connection is clean afterwards
        await _add_by_hand(uow, "c", "commit")
    assert await _stored(database) == (["c"], [])


async def test_after_a_refused_commit_the_unit_of_work_goes_on(database: Database) -> None:
    async with database.unit_of_work() as uow:
        await _note(uow, "lost")
        await _add_by_hand(uow, "d", "rollback")
        with pytest.raises(TransactionEndedError):
            await uow.connection.commit()  # refused too, and rolled back
        await _note(uow, "lost too")
        await _add_by_hand(uow, "d", "rollback")
        with pytest.raises(TransactionEndedError):
            await uow.commit()
        await _add_by_hand(uow, "e", "rollback")
        await uow.connection.rollback()  # its owner rolls back: nothing is left to lose
        await _note(uow, "e")
    assert await _stored(database) == ([], ["e"])


async def test_a_session_on_a_connection_kept_across_a_commit_is_caught(
    database: Database,
) -> None:
    # a repository that kept `uow.connection` builds its session after the unit of work
    # committed: the session may own the next transaction, and its close() end it
    async def write() -> None:
        async with database.unit_of_work() as uow:
            kept = uow.connection
            await uow.commit()
            session = AsyncSession(bind=kept)
            await session.execute(sa.insert(notes).values(note_id="f"))
            await _note(uow, "f")
            await session.close()  # rolls back what it owns: the note and the event
            await _note(uow, "g")

    with pytest.raises(TransactionEndedError):
        await write()
    assert await _stored(database) == ([], [])
