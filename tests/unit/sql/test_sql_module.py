from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from dockyard import App
from dockyard.di import scoped
from dockyard.eventsourcing import NO_STREAM, EventStore, SnapshotStore
from dockyard.modules import module
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore, SqlModule, SqlUnitOfWork

notes = sa.Table(
    "notes",
    sa.MetaData(),
    sa.Column("note_id", sa.String(20), primary_key=True),
)


@dataclass(frozen=True)
class NoteTaken:
    note_id: str


class NoteRepository:
    """An app repository on the scope's unit of work, like users write them."""

    def __init__(self, uow: SqlUnitOfWork, events: EventStore) -> None:
        self.uow, self.events = uow, events

    async def add(self, note_id: str) -> None:
        await self.uow.connection.execute(sa.insert(notes).values(note_id=note_id))
        await self.events.append(f"Note-{note_id}", [NoteTaken(note_id)], NO_STREAM)


def _app(tmp_path: Path) -> App:
    @module(
        providers=[scoped(NoteRepository)],
        imports=[
            SqlModule.register(
                f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
                serializer=Serializer(TypeRegistry([NoteTaken])),
                create_tables=True,
            )
        ],
        exports=[NoteRepository],
    )
    class Notes: ...

    return App.build(Notes)


async def _stored(app: App) -> tuple[list[str], int]:
    async with app.scope() as scope:
        uow = await scope.get(SqlUnitOfWork)
        rows = (await uow.connection.execute(sa.select(notes.c.note_id))).scalars().all()
        events = await (await scope.get(EventStore)).read_all()
    return list(rows), len(events)


async def test_a_scope_commits_app_rows_and_events_together(tmp_path: Path) -> None:
    async with _app(tmp_path) as app:
        database = await app.get(Database)
        async with database.engine.begin() as connection:
            await connection.run_sync(notes.metadata.create_all)
        async with app.scope() as scope:
            repository = await scope.get(NoteRepository)
            assert repository.uow is await scope.get(SqlUnitOfWork)
            assert isinstance(await scope.get(EventStore), SqlEventStore)
            await (await scope.get(SnapshotStore)).save("Note-a", 1, NoteTaken("a"))
            await repository.add("a")
        assert await _stored(app) == (["a"], 1)

        class Boom(Exception):
            pass

        async def fail_in_scope() -> None:
            async with app.scope() as scope:
                await (await scope.get(NoteRepository)).add("b")
                raise Boom

        with pytest.raises(Boom):
            await fail_in_scope()
        assert await _stored(app) == (["a"], 1)


async def test_each_scope_gets_its_own_unit_of_work(tmp_path: Path) -> None:
    async with _app(tmp_path) as app:
        async with app.scope() as first:
            one = await first.get(SqlUnitOfWork)
            assert one is await first.get(SqlUnitOfWork)
        async with app.scope() as second:
            assert await second.get(SqlUnitOfWork) is not one
        assert await app.get(Database) is await app.get(Database)
