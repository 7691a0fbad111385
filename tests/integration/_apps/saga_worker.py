"""A worker running a 3-step saga whose steps only write to the database, for the crash tests.

Run by ``dockyard worker integration._apps.saga_worker:app``. The database comes from
``DOCKYARD_TEST_SAGA_URL`` (and, on PostgreSQL, the schema from ``DOCKYARD_TEST_SCHEMA``).
Each step inserts one row into ``test_saga_effects`` in the step's own transaction, naming the
process that wrote it; a step that ran twice would leave two rows (nothing makes them unique).

The ``gate`` saga's one step also says, on a connection of its own, that it has begun, and
then waits until ``test_saga_gate`` is opened: a test stops the process in there.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dockyard.app import App
from dockyard.modules import module
from dockyard.sagas import Saga, SagaSettings, SagasModule, SagaStep, SagaStepContext, step
from dockyard.sql import Database, SqlModule, SqlSagaBackend, SqlUnitOfWork

WRITER = f"pid-{os.getpid()}"
LEASE_TTL = 1.5
MAX_STEP_PAUSE = float(os.environ.get("DOCKYARD_TEST_STEP_PAUSE", "0.005"))

tables = sa.MetaData()
effects = sa.Table(
    "test_saga_effects",
    tables,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("saga_id", sa.String(64), nullable=False),
    sa.Column("step", sa.String(32), nullable=False),
    sa.Column("writer", sa.String(32), nullable=False),
)
entered = sa.Table(
    "test_saga_entered",
    tables,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("saga_id", sa.String(64), nullable=False),
    sa.Column("writer", sa.String(32), nullable=False),
)
gate = sa.Table(
    "test_saga_gate",
    tables,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("is_open", sa.Boolean(), nullable=False),
)


@dataclass
class Job:
    job_id: str
    steps_done: int = 0


class WriteEffect(SagaStep[Job]):
    """Writes its effect in the step's transaction, then takes a little time (so a kill lands
    anywhere: in a step, between steps, in a checkpoint)."""

    def __init__(self, uow: SqlUnitOfWork, context: SagaStepContext) -> None:
        self._uow = uow
        self._context = context

    async def act(self, state: Job) -> None:
        await self._uow.connection.execute(
            sa.insert(effects).values(
                saga_id=self._context.saga_id, step=self._context.step, writer=WRITER
            )
        )
        await asyncio.sleep(random.uniform(0, MAX_STEP_PAUSE))
        state.steps_done += 1


class WaitAtGate(SagaStep[Job]):
    """Writes its effect, says (committed, elsewhere) that it is in, waits for the gate."""

    def __init__(self, uow: SqlUnitOfWork, database: Database, context: SagaStepContext) -> None:
        self._uow = uow
        self._database = database
        self._context = context

    async def act(self, state: Job) -> None:
        saga_id = self._context.saga_id
        await self._uow.connection.execute(
            sa.insert(effects).values(saga_id=saga_id, step=self._context.step, writer=WRITER)
        )
        async with self._database.engine.begin() as connection:
            await connection.execute(sa.insert(entered).values(saga_id=saga_id, writer=WRITER))
        while True:
            async with self._database.engine.connect() as connection:
                opened = await connection.scalar(
                    sa.select(gate.c.is_open).where(gate.c.name == "gate")
                )
            if opened:
                break
            await asyncio.sleep(0.02)
        state.steps_done += 1


JOB = Saga(
    "job",
    version=1,
    state=Job,
    steps=[step("a", WriteEffect), step("b", WriteEffect), step("c", WriteEffect)],
)
GATED = Saga("gated", version=1, state=Job, steps=[step("wait", WaitAtGate)])


def engine_options(schema: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"pool_size": 4, "max_overflow": 2}
    if schema:
        options["connect_args"] = {"server_settings": {"search_path": schema}}
    return options


def build(url: str, schema: str | None = None, *, run_runner: bool = True) -> App:
    sql = SqlModule.register(url, **engine_options(schema))
    sagas = SagasModule.register(
        sagas=[JOB, GATED],
        backend=SqlSagaBackend(),
        imports=[sql],
        settings=SagaSettings(concurrency=3, lease_ttl=LEASE_TTL, max_poll_interval=0.05),
        run_runner=run_runner,
    )

    @module(imports=[sql, sagas])
    class SagaWorker: ...

    return App.build(SagaWorker)


def app() -> App:
    return build(os.environ["DOCKYARD_TEST_SAGA_URL"], os.environ.get("DOCKYARD_TEST_SCHEMA"))
