"""SQLAlchemy's ORM ``AsyncSession`` in the unit of work: one transaction with events and outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dockyard import App, Command, CommandHandler, Event, IPublisher
from dockyard.di import scoped
from dockyard.eventsourcing import NO_STREAM, EventStore
from dockyard.exceptions import ModuleConfigurationError, TransactionEndedError
from dockyard.modules import module
from dockyard.outbox import OutboxModule, OutboxStatus, OutboxStore, route
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlModule, SqlOutboxBackend, SqlUnitOfWork
from dockyard.testing.pytest import isolated_database
from dockyard.transport.memory import InMemoryTransport
from services import POSTGRES_URL, require_service


class Base(DeclarativeBase):
    pass


class Note(Base):
    __tablename__ = "orm_notes"
    note_id: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    text: Mapped[str] = mapped_column(sa.String(100))


@dataclass(frozen=True, slots=True)
class NoteTaken(Event):
    note_id: str


@dataclass(frozen=True, slots=True)
class TakeNote(Command[None]):
    note_id: str
    fail: bool = False


class Boom(Exception):
    pass


class TakeNoteHandler(CommandHandler[TakeNote, None]):
    def __init__(self, session: AsyncSession, events: EventStore, publisher: IPublisher) -> None:
        self.session, self.events, self.publisher = session, events, publisher

    async def handle(self, request: TakeNote, /) -> None:
        self.session.add(Note(note_id=request.note_id, text="hello"))
        await self.events.append(f"Note-{request.note_id}", [NoteTaken(request.note_id)], NO_STREAM)
        await self.publisher.publish(NoteTaken(request.note_id))  # routed: an outbox row
        if request.fail:
            await self.session.flush()  # the row is written, then the scope fails
            raise Boom


class HandBuiltNotes:
    """A repository that builds its own session on ``uow.connection``, inline: the wiring
    that, on a unit of work that had not run a statement yet, owned the transaction."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    async def add(self, note_id: str, end: str) -> None:
        session = AsyncSession(bind=self.uow.connection)
        try:
            session.add(Note(note_id=note_id, text="by hand"))
            if end == "failed flush":  # the row is there already: the flush fails
                session.add(Note(note_id="taken", text="twice"))
                with pytest.raises(sa.exc.IntegrityError):
                    await session.flush()
            elif end == "commit":
                await session.commit()
            else:
                await session.flush()
                if end == "rollback":
                    await session.rollback()
        finally:
            await session.close()


Ending = Literal["flush", "commit", "rollback", "failed flush"]


@dataclass(frozen=True, slots=True)
class TakeNoteByHand(Command[None]):
    note_id: str
    end: Ending
    event_first: bool = False
    fail: bool = False


class TakeNoteByHandHandler(CommandHandler[TakeNoteByHand, None]):
    def __init__(self, notes: HandBuiltNotes, events: EventStore, publisher: IPublisher) -> None:
        self.notes, self.events, self.publisher = notes, events, publisher

    async def handle(self, request: TakeNoteByHand, /) -> None:
        if request.event_first:
            await self.events.append("Note-first", [NoteTaken("first")], NO_STREAM)
        await self.notes.add(request.note_id, request.end)
        await self.events.append(f"Note-{request.note_id}", [NoteTaken(request.note_id)], NO_STREAM)
        await self.publisher.publish(NoteTaken(request.note_id))
        if request.fail:
            raise Boom


@pytest.fixture(
    params=[
        "sqlite",
        "sqlite-pool",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres-pool", marks=pytest.mark.postgres),
    ]
)
async def app(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[App]:
    """The app on each dialect, with the unit of work's driver fast path and without it
    (``pool_pre_ping`` turns it off: docs/design/unit-of-work.md)."""
    url = None
    options = {"pool_pre_ping": True} if request.param.endswith("-pool") else {}
    if request.param.startswith("postgres"):
        require_service("postgres")
        url = POSTGRES_URL
    async with isolated_database(url, tmp_path) as isolated:

        @module(
            providers=[scoped(HandBuiltNotes)],
            handlers=[TakeNoteHandler, TakeNoteByHandHandler, route(NoteTaken).to("notes")],
            imports=[
                isolated.sql_module(serializer=Serializer(TypeRegistry([NoteTaken])), **options),
                OutboxModule.register(
                    transport=InMemoryTransport(), backend=SqlOutboxBackend(), run_relay=False
                ),
            ],
        )
        class Notes: ...

        async with App.build(Notes) as app:
            database = await app.get(Database)
            async with database.engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
            yield app


async def _stored(app: App) -> tuple[list[str], int, int]:
    async with app.scope() as scope:
        session = await scope.get(AsyncSession)
        notes = (await session.scalars(sa.select(Note.note_id).order_by(Note.note_id))).all()
        events = await (await scope.get(EventStore)).read_all()
    counts = await (await app.get(OutboxStore)).counts()
    return list(notes), len(events), counts[OutboxStatus.PENDING]


async def test_orm_rows_events_and_outbox_rows_commit_together(app: App) -> None:
    await app.send(TakeNote("a"))
    assert await _stored(app) == (["a"], 1, 1)


async def test_an_exception_rolls_all_of_them_back(app: App) -> None:
    with pytest.raises(Boom):
        await app.send(TakeNote("b", fail=True))
    assert await _stored(app) == ([], 0, 0)


async def test_the_session_flushes_before_the_unit_of_work_commits(app: App) -> None:
    async with app.scope() as scope:
        session = await scope.get(AsyncSession)
        session.add(Note(note_id="c", text="pending"))  # never flushed by the caller
        uow = await scope.get(SqlUnitOfWork)
        assert session.bind is uow.connection
    assert await _stored(app) == (["c"], 0, 0)


async def test_session_commit_and_rollback_stay_inside_the_unit_of_work(app: App) -> None:
    async with app.scope() as scope:
        session = await scope.get(AsyncSession)
        session.add(Note(note_id="kept", text="x"))
        await session.commit()  # releases the session's savepoint: nothing is committed yet
        session.add(Note(note_id="undone", text="x"))
        await session.flush()
        await session.rollback()  # back to the savepoint: "kept" stays
        await (await scope.get(EventStore)).append("Note-kept", [NoteTaken("kept")], NO_STREAM)
    assert await _stored(app) == (["kept"], 1, 0)

    async def fail_after_a_session_commit() -> None:
        async with app.scope() as scope:
            session = await scope.get(AsyncSession)
            session.add(Note(note_id="gone", text="x"))
            await session.commit()  # not a commit of the scope's transaction
            raise Boom

    with pytest.raises(Boom):
        await fail_after_a_session_commit()
    assert await _stored(app) == (["kept"], 1, 0)


@pytest.mark.parametrize("end", ["flush", "commit"])
async def test_a_session_built_by_hand_joins_the_unit_of_work(app: App, end: Ending) -> None:
    # built before the scope ran a statement, closed before the event is appended
    await app.send(TakeNoteByHand("d", end))
    assert await _stored(app) == (["d"], 1, 1)


@pytest.mark.parametrize("end", ["flush", "commit"])
async def test_a_session_built_by_hand_cannot_commit_the_unit_of_work(
    app: App, end: Ending
) -> None:
    with pytest.raises(Boom):  # after the session's commit() and close(): all rolls back
        await app.send(TakeNoteByHand("e", end, fail=True))
    assert await _stored(app) == ([], 0, 0)


@pytest.mark.parametrize("end", ["rollback", "failed flush"])
@pytest.mark.parametrize("event_first", [True, False])
async def test_a_rollback_by_a_session_built_by_hand_fails_the_commit_loudly(
    app: App, end: Ending, event_first: bool
) -> None:
    # the session rolled back the unit of work's transaction, with the event appended before
    # it: what came after must not commit as if nothing happened
    async with app.scope() as scope:
        session = await scope.get(AsyncSession)
        session.add(Note(note_id="taken", text="x"))
    with pytest.raises(ExceptionGroup) as raised:  # Dishka groups what the scope's end raised
        await app.send(TakeNoteByHand("f", end, event_first=event_first))
    assert raised.group_contains(TransactionEndedError, match="ended by something other than")
    assert await _stored(app) == (["taken"], 0, 0)
    await app.send(TakeNoteByHand("g", "flush"))  # the connection is clean afterwards
    assert await _stored(app) == (["g", "taken"], 1, 1)


async def test_the_connection_is_handed_out_inside_the_transaction(app: App) -> None:
    async with app.scope() as scope:
        uow = await scope.get(SqlUnitOfWork)
        assert uow.connection.in_transaction()  # before any statement: nothing to own
        await uow.commit()
        assert uow.connection.in_transaction()  # the next one
        await uow.connection.commit()  # the unit of work's own connection may end it
        assert uow.connection.in_transaction()
        await (await scope.get(EventStore)).append("Note-h", [NoteTaken("h")], NO_STREAM)
    assert await _stored(app) == ([], 1, 0)


def test_a_second_session_provider_beside_sql_module_is_refused(tmp_path: Path) -> None:
    def naive(uow: SqlUnitOfWork) -> AsyncSession:  # the wiring that lost rows silently
        return AsyncSession(bind=uow.connection)

    @module(
        providers=[scoped(AsyncSession, naive)],
        imports=[SqlModule.register(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")],
    )
    class Repo: ...

    with pytest.raises(ModuleConfigurationError, match="sees `AsyncSession` from `Repo` and"):
        App.build(Repo)
