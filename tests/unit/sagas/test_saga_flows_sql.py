"""Sagas on ``SqlSagaBackend`` (SQLite, PostgreSQL): the paths of the in-memory tests, and
what only a real transaction shows: a step's writes and outbox rows commit with its checkpoint
or not at all."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from checkout_sagas import CHECKOUT, NO_WAIT, Checkout, Journal, build, run, sql_module
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dockyard import App, module
from dockyard.outbox import Outbox, OutboxModule
from dockyard.retry import RetryPolicy
from dockyard.sagas import (
    Saga,
    SagaControl,
    Sagas,
    SagaSettings,
    SagasModule,
    SagaStatus,
    SagaStep,
    SagaStepContext,
    step,
)
from dockyard.sql import (
    Database,
    SqlOutboxBackend,
    SqlSagaBackend,
    SqlUnitOfWork,
    outbox_table,
    sagas_table,
)
from dockyard.testing.pytest import IsolatedDatabase
from dockyard.transport.memory import InMemoryTransport

own_tables = sa.MetaData()
writes = sa.Table(
    "test_step_writes",
    own_tables,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("saga_id", sa.String(64), nullable=False),
    sa.Column("step", sa.String(32), nullable=False),
)


async def test_the_checkout_paths_on_sql(isolated: IsolatedDatabase) -> None:
    journal = Journal(fail={"ship": 2})  # o-1 compensates; then o-2 completes
    async with build(journal, sql=sql_module(isolated)) as app:
        compensated = await run(app, CHECKOUT, "o-1")
        completed = await run(app, CHECKOUT, "o-2")
        state = (await app.get(SagaControl)).state(compensated)
    assert compensated.status is SagaStatus.COMPENSATED
    assert [(e.step, e.kind.value) for e in compensated.log] == [
        ("reserve", "completed"),
        ("charge", "completed"),
        ("ship", "failed"),
        ("ship", "failed"),
        ("charge", "compensated"),
        ("reserve", "compensated"),
    ]
    assert completed.status is SagaStatus.COMPLETED
    assert isinstance(state, Checkout)
    assert state.done == ["reserve", "charge", "undo charge", "undo reserve"]


@dataclass
class Note:
    note_id: str


@dataclass(frozen=True)
class NoteWritten:
    note_id: str


FAILURES: dict[str, int] = {}
"""Failures left per saga id, for `WriteAndSend` (after its writes)."""


class WriteAndSend(SagaStep[Note]):
    """Writes a row and an outbox message in the step's transaction, then maybe fails."""

    def __init__(self, uow: SqlUnitOfWork, outbox: Outbox, context: SagaStepContext) -> None:
        self._uow = uow
        self._outbox = outbox
        self._context = context

    async def act(self, state: Note) -> None:
        await self._uow.connection.execute(
            sa.insert(writes).values(saga_id=state.note_id, step=self._context.step)
        )
        await self._outbox.add(NoteWritten(state.note_id), destination="notes")
        if FAILURES.get(state.note_id, 0):
            FAILURES[state.note_id] -= 1
            raise RuntimeError("failed after writing")


NOTE = Saga(
    "note",
    version=1,
    state=Note,
    steps=[step("first", WriteAndSend), step("second", WriteAndSend)],
    retry=NO_WAIT,
)


def note_app(isolated: IsolatedDatabase) -> App:
    sql = sql_module(isolated)
    outbox = OutboxModule.register(
        transport=InMemoryTransport(), backend=SqlOutboxBackend(), run_relay=False
    )
    sagas = SagasModule.register(
        sagas=[NOTE], backend=SqlSagaBackend(), imports=[sql], settings=SagaSettings()
    )

    @module(imports=[sql, outbox, sagas])
    class Root: ...

    return App.build(Root)


async def _count(database: Database, table: sa.Table, saga_id: str | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    if saga_id is not None:
        query = query.where(table.c.saga_id == saga_id)
    async with database.engine.connect() as connection:
        return int(await connection.scalar(query) or 0)


async def test_a_failed_attempt_rolls_back_its_writes_and_outbox_rows(
    isolated: IsolatedDatabase,
) -> None:
    FAILURES["n-1"] = 1  # the first attempt of `first` writes, adds a message, then fails
    database = isolated.database()
    try:
        async with note_app(isolated) as app:
            async with app.scope() as scope:
                await (await scope.get(Sagas)).start(NOTE, Note("n-1"), saga_id="n-1")
            control = await app.get(SagaControl)
            await control.run_due()
            record = await control.get("n-1")
        assert record.status is SagaStatus.COMPLETED
        assert [(e.step, e.kind.value, e.attempt) for e in record.log] == [
            ("first", "failed", 1),
            ("first", "completed", 2),
            ("second", "completed", 1),
        ]
        assert await _count(database, writes, "n-1") == 2  # one per step, none of attempt 1
        assert await _count(database, outbox_table) == 2
    finally:
        await database.dispose()


async def test_a_start_whose_transaction_rolls_back_leaves_no_instance(
    isolated: IsolatedDatabase,
) -> None:
    async with note_app(isolated) as app:

        async def start_then_fail() -> None:
            async with app.scope() as scope:
                await (await scope.get(Sagas)).start(NOTE, Note("n-1"), saga_id="n-1")
                uow = await scope.get(SqlUnitOfWork)
                await uow.connection.execute(sa.insert(writes).values(saga_id="n-1", step="x"))
                raise RuntimeError("the command failed")

        with pytest.raises(RuntimeError, match="the command failed"):
            await start_then_fail()
        control = await app.get(SagaControl)
        assert await control.list() == []
        assert await control.run_due() == 0


async def test_runners_racing_over_the_same_instances_run_each_step_once(
    isolated: IsolatedDatabase,
) -> None:
    database = isolated.database()
    try:
        async with note_app(isolated) as app:
            async with app.scope() as scope:
                sagas = await scope.get(Sagas)
                for n in range(30):
                    await sagas.start(NOTE, Note(f"r-{n:02d}"), saga_id=f"r-{n:02d}")
            control = await app.get(SagaControl)
            attempts = await asyncio.gather(*(control.run_due() for _ in range(3)))
            statuses = {r.status for r in await control.list()}
        assert sum(attempts) == 60  # 30 sagas × 2 steps, each attempt by one runner only
        assert statuses == {SagaStatus.COMPLETED}
        async with database.engine.connect() as connection:
            duplicated = (
                await connection.execute(
                    sa.select(writes.c.saga_id, writes.c.step)
                    .group_by(writes.c.saga_id, writes.c.step)
                    .having(sa.func.count() > 1)
                )
            ).all()
        assert duplicated == []
        assert await _count(database, writes) == 60
    finally:
        await database.dispose()


async def test_without_a_backend_an_app_with_sql_module_keeps_its_sagas_in_the_database(
    isolated: IsolatedDatabase,
) -> None:
    # Never silently in memory next to a database: the default follows the app (as the outbox's).
    sql = sql_module(isolated)
    outbox = OutboxModule.register(transport=InMemoryTransport(), run_relay=False)
    sagas = SagasModule.register(sagas=[NOTE], imports=[sql], settings=SagaSettings())

    @module(imports=[sagas, outbox, sql])  # SqlModule found wherever it is registered
    class Root: ...

    database = isolated.database()
    try:
        async with App.build(Root) as app:
            async with app.scope() as scope:
                await (await scope.get(Sagas)).start(NOTE, Note("n-9"), saga_id="n-9")
            assert await _count(database, sagas_table, "n-9") == 1
    finally:
        await database.dispose()


class Entries(DeclarativeBase):
    pass


class Entry(Entries):
    __tablename__ = "test_session_entries"

    entry_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


class AddOnTheSession(SagaStep[Note]):
    """Adds a row on the scope's ``AsyncSession`` and leaves the flush to dockyard."""

    def __init__(self, session: AsyncSession, context: SagaStepContext) -> None:
        self._session = session
        self._context = context

    async def act(self, state: Note) -> None:
        self._session.add(Entry(entry_id=f"{state.note_id}:{self._context.step}"))


SESSION_NOTE = Saga(
    "session-note",
    version=1,
    state=Note,
    steps=[step("first", AddOnTheSession), step("second", AddOnTheSession)],
    retry=RetryPolicy(max_attempts=1),
)


async def test_a_steps_unflushed_session_writes_commit_with_its_checkpoint(
    isolated: IsolatedDatabase,
) -> None:
    # `second`'s row exists already: its flush fails. Flushed before the checkpoint, in its
    # transaction, the attempt fails and nothing of it commits; flushed after (in a transaction
    # of its own), the saga would have moved past a step whose write never happened.
    database = isolated.database()
    sql = sql_module(isolated)
    sagas = SagasModule.register(
        sagas=[SESSION_NOTE], backend=SqlSagaBackend(), imports=[sql], settings=SagaSettings()
    )

    @module(imports=[sql, sagas])
    class Root: ...

    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(Entries.metadata.create_all)
            await connection.execute(sa.insert(Entry).values(entry_id="s-1:second"))
        async with App.build(Root) as app:
            async with app.scope() as scope:
                await (await scope.get(Sagas)).start(SESSION_NOTE, Note("s-1"), saga_id="s-1")
            control = await app.get(SagaControl)
            await control.run_due()
            record = await control.get("s-1")
        assert [(e.step, e.kind.value) for e in record.log] == [
            ("first", "completed"),
            ("second", "failed"),  # then compensated: `first` has nothing to undo
        ]
        assert record.status is SagaStatus.COMPENSATED
        assert record.error is not None
        assert "IntegrityError" in record.error
        async with database.engine.connect() as connection:
            rows = (await connection.execute(sa.select(Entry.entry_id))).scalars().all()
        assert sorted(rows) == ["s-1:first", "s-1:second"]  # the first step's, flushed
    finally:
        await database.dispose()
