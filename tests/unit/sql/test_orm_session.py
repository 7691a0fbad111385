"""SQLAlchemy's ORM ``AsyncSession`` in the unit of work: one transaction with events and outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dockyard import App, Command, CommandHandler, Event, IPublisher
from dockyard.di import scoped
from dockyard.eventsourcing import NO_STREAM, EventStore
from dockyard.exceptions import ModuleConfigurationError
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
            handlers=[TakeNoteHandler, route(NoteTaken).to("notes")],
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
        notes = (await session.scalars(sa.select(Note.note_id))).all()
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
