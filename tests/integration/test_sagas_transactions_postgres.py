"""How many write transactions a 3-step saga costs on PostgreSQL, counted by the server.

A trigger records the transaction id of every write to the saga's row, and each step writes a
row stamped with its own transaction id: a saga started where a runner runs costs four write
transactions (the caller's, and one per step), and each step's write shares the transaction
of the checkpoint that moves the saga past it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard import App, module
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
from dockyard.sql import SqlSagaBackend, SqlUnitOfWork
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from services import POSTGRES_URL, require_service

pytestmark = pytest.mark.postgres

TRIGGER = [
    "CREATE TABLE saga_row_writes (saga_id text NOT NULL, txid bigint NOT NULL)",
    """CREATE FUNCTION record_saga_row_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO saga_row_writes VALUES (NEW.saga_id, txid_current());
        RETURN NEW;
    END $$""",
    """CREATE TRIGGER record_saga_row_write AFTER INSERT OR UPDATE ON dockyard_sagas
        FOR EACH ROW EXECUTE FUNCTION record_saga_row_write()""",
    """CREATE TABLE step_writes (
        saga_id text NOT NULL, step text NOT NULL, txid bigint NOT NULL DEFAULT txid_current()
    )""",
]


@dataclass
class Parcel:
    parcel_id: str


class Stamp(SagaStep[Parcel]):
    def __init__(self, uow: SqlUnitOfWork, context: SagaStepContext) -> None:
        self._uow = uow
        self._context = context

    async def act(self, state: Parcel) -> None:
        await self._uow.connection.execute(
            sa.text("INSERT INTO step_writes (saga_id, step) VALUES (:saga_id, :step)"),
            {"saga_id": self._context.saga_id, "step": self._context.step},
        )


PARCEL = Saga(
    "parcel",
    version=1,
    state=Parcel,
    steps=[step("pack", Stamp), step("label", Stamp), step("send", Stamp)],
)


@pytest_asyncio.fixture
async def isolated(tmp_path: Path) -> AsyncIterator[IsolatedDatabase]:
    require_service("postgres")
    async with isolated_database(POSTGRES_URL, tmp_path) as found:
        database = found.database()
        try:
            await database.create_tables()
            async with database.engine.begin() as connection:
                for statement in TRIGGER:
                    await connection.exec_driver_sql(statement)
        finally:
            await database.dispose()
        yield found


def parcel_app(isolated: IsolatedDatabase) -> App:
    sql = isolated.sql_module(pool_size=3, max_overflow=2)
    sagas = SagasModule.register(
        sagas=[PARCEL],
        backend=SqlSagaBackend(),
        imports=[sql],
        settings=SagaSettings(lease_ttl=300.0),  # no lease renewal while it runs
    )

    @module(imports=[sql, sagas])
    class Post: ...

    return App.build(Post)


async def _row_writes(app: App, saga_id: str) -> tuple[list[int], dict[str, int]]:
    async with app.scope() as scope:
        connection = (await scope.get(SqlUnitOfWork)).connection
        row = await connection.execute(
            sa.text("SELECT txid FROM saga_row_writes WHERE saga_id = :id ORDER BY txid"),
            {"id": saga_id},
        )
        steps = await connection.execute(
            sa.text("SELECT step, txid FROM step_writes WHERE saga_id = :id"), {"id": saga_id}
        )
        return list(row.scalars()), {str(r[0]): int(r[1]) for r in steps.all()}


async def test_started_beside_a_runner_a_3_step_saga_costs_four_write_transactions(
    isolated: IsolatedDatabase,
) -> None:
    async with parcel_app(isolated) as app:
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        try:
            async with asyncio.timeout(60):
                while not app.health().services:  # noqa: ASYNC110 - the runner is up
                    await asyncio.sleep(0.01)
                async with app.scope() as scope:
                    await (await scope.get(Sagas)).start(PARCEL, Parcel("p-1"), saga_id="p-1")
                control = await app.get(SagaControl)
                while (await control.get("p-1")).status is not SagaStatus.COMPLETED:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        finally:
            stop.set()
            await worker
        transactions, steps = await _row_writes(app, "p-1")
    assert len(set(transactions)) == len(transactions) == 4  # start + one per step, no claim
    assert set(steps) == {"pack", "label", "send"}
    assert set(steps.values()) == set(transactions[1:])  # each step's write, its checkpoint's


async def test_started_where_no_runner_runs_a_claim_adds_one(isolated: IsolatedDatabase) -> None:
    async with parcel_app(isolated) as app:
        async with app.scope() as scope:
            await (await scope.get(Sagas)).start(PARCEL, Parcel("p-2"), saga_id="p-2")
        await (await app.get(SagaControl)).run_due()
        transactions, steps = await _row_writes(app, "p-2")
    assert len(set(transactions)) == 5  # start, claim, three steps
    assert set(steps.values()) == set(transactions[2:])
