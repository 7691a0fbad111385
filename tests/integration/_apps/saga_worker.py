"""A worker running a 3-step saga whose steps only write to the database, for the crash tests.

Run by ``dockyard worker integration._apps.saga_worker:app``. The database comes from
``DOCKYARD_TEST_SAGA_URL`` (and, on PostgreSQL, the schema from ``DOCKYARD_TEST_SCHEMA``);
the other ``DOCKYARD_TEST_SAGA_*`` variables below set the runner and the deployment.
Each step inserts one row into ``test_saga_effects`` in the step's own transaction, naming the
process and the deployment that wrote it (a step that ran twice would leave two rows: nothing
makes them unique), and adds one to its instance's row of ``test_saga_counters``, if the test
made one. With a journal directory, each step *attempt* also appends a line to a file of its
process before it writes anything: attempts whose transaction never committed are counted too.

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

CONCURRENCY = "DOCKYARD_TEST_SAGA_CONCURRENCY"
"""Instances the runner works on at once (default 3)."""
LEASE = "DOCKYARD_TEST_SAGA_LEASE"
"""The runner's lease in seconds (default ``LEASE_TTL``)."""
POOL = "DOCKYARD_TEST_SAGA_POOL"
"""The connection pool's size (default 4, plus 2 overflow)."""
DEPLOY = "DOCKYARD_TEST_SAGA_DEPLOY"
"""Which deployment of the ``job`` saga this process runs: a key of ``DEPLOYMENTS``."""
JOURNAL = "DOCKYARD_TEST_SAGA_JOURNAL"
"""A directory: each step attempt appends ``saga_id step`` to ``attempts-<pid>.log`` there."""

STALL_AFTER = "DOCKYARD_TEST_SAGA_STALL_AFTER"
"""A number of step attempts: every later ``WriteEffect`` attempt of this process waits, before
it writes anything, until the process is killed (so a kill lands with steps in flight at a
point the test chose, however fast this process runs)."""

DEPLOYED = os.environ.get(DEPLOY, "v1")
_STALL_AFTER = int(os.environ.get(STALL_AFTER, "0")) or None
_attempts = 0

tables = sa.MetaData()
effects = sa.Table(
    "test_saga_effects",
    tables,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("saga_id", sa.String(64), nullable=False),
    sa.Column("step", sa.String(32), nullable=False),
    sa.Column("writer", sa.String(32), nullable=False),
    sa.Column("deploy", sa.String(32), nullable=False),
)
counters = sa.Table(
    "test_saga_counters",
    tables,
    sa.Column("saga_id", sa.String(64), primary_key=True),
    sa.Column("steps", sa.Integer(), nullable=False),
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


_journal: int | None = None


def journal(context: SagaStepContext) -> None:
    """Append this attempt to the process's journal (if it keeps one), before any write: the
    line is in the file once ``os.write`` returns, even if the process is killed right after."""
    global _journal  # noqa: PLW0603 - one file per process, opened on first use
    directory = os.environ.get(JOURNAL)
    if directory is None:
        return
    if _journal is None:
        path = os.path.join(directory, f"attempts-{os.getpid()}.log")  # noqa: PTH118
        _journal = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_journal, f"{context.saga_id} {context.step}\n".encode())


def effect(context: SagaStepContext) -> sa.Insert:
    return sa.insert(effects).values(
        saga_id=context.saga_id, step=context.step, writer=WRITER, deploy=DEPLOYED
    )


class WriteEffect(SagaStep[Job]):
    """Writes its effect in the step's transaction, then takes a little time (so a kill lands
    anywhere: in a step, between steps, in a checkpoint)."""

    def __init__(self, uow: SqlUnitOfWork, context: SagaStepContext) -> None:
        self._uow = uow
        self._context = context

    async def act(self, state: Job) -> None:
        global _attempts  # noqa: PLW0603 - one count per process
        _attempts += 1
        if _STALL_AFTER is not None and _attempts > _STALL_AFTER:
            await asyncio.Event().wait()  # until killed: nothing written, no lock held
        journal(self._context)
        connection = self._uow.connection
        await connection.execute(effect(self._context))
        await connection.execute(
            sa.update(counters)
            .where(counters.c.saga_id == self._context.saga_id)
            .values(steps=counters.c.steps + 1)
        )
        await asyncio.sleep(random.uniform(0, MAX_STEP_PAUSE))
        state.steps_done += 1


class PatchedWriteEffect(WriteEffect):
    """What a redeploy that changed the steps' code (not the saga's name or version) runs:
    the same effects, written by another class, through a statement built differently."""

    async def act(self, state: Job) -> None:
        journal(self._context)
        await self._uow.connection.execute(effect(self._context))
        await self._uow.connection.execute(
            sa.text("UPDATE test_saga_counters SET steps = steps + 1 WHERE saga_id = :saga_id"),
            {"saga_id": self._context.saga_id},
        )
        state.steps_done += 1


class WaitAtGate(SagaStep[Job]):
    """Writes its effect, says (committed, elsewhere) that it is in, waits for the gate."""

    def __init__(self, uow: SqlUnitOfWork, database: Database, context: SagaStepContext) -> None:
        self._uow = uow
        self._database = database
        self._context = context

    async def act(self, state: Job) -> None:
        saga_id = self._context.saga_id
        await self._uow.connection.execute(effect(self._context))
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


def job(version: int = 1, handler: type[WriteEffect] = WriteEffect, **options: Any) -> Saga[Job]:
    return Saga(
        "job",
        version=version,
        state=Job,
        steps=[step("a", handler), step("b", handler), step("c", handler)],
        **options,
    )


JOB = job()
DEPLOYMENTS = {
    "v1": JOB,
    "v1-patched": job(handler=PatchedWriteEffect),  # new step code, same name and version
    "v2": job(2),  # a new version that cannot resume version 1's instances
    "v2-compatible": job(2, compatible_with=(1,)),
}
GATED = Saga("gated", version=1, state=Job, steps=[step("wait", WaitAtGate)])


def engine_options(schema: str | None, pool_size: int = 4) -> dict[str, Any]:
    options: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 2}
    if schema:
        options["connect_args"] = {"server_settings": {"search_path": schema}}
    return options


def build(
    url: str,
    schema: str | None = None,
    *,
    run_runner: bool = True,
    deploy: str = "v1",
    concurrency: int = 3,
    lease_ttl: float = LEASE_TTL,
    pool_size: int = 4,
) -> App:
    sql = SqlModule.register(url, **engine_options(schema, pool_size))
    settings = SagaSettings(concurrency=concurrency, lease_ttl=lease_ttl, max_poll_interval=0.05)
    sagas = SagasModule.register(
        sagas=[DEPLOYMENTS[deploy], GATED],
        backend=SqlSagaBackend(),
        imports=[sql],
        settings=settings,
        run_runner=run_runner,
    )

    @module(imports=[sql, sagas])
    class SagaWorker: ...

    return App.build(SagaWorker)


def app() -> App:
    env = os.environ
    return build(
        env["DOCKYARD_TEST_SAGA_URL"],
        env.get("DOCKYARD_TEST_SCHEMA"),
        deploy=DEPLOYED,
        concurrency=int(env.get(CONCURRENCY, "3")),
        lease_ttl=float(env.get(LEASE, str(LEASE_TTL))),
        pool_size=int(env.get(POOL, "4")),
    )


# The worker's signal handling is in place once the app is being imported: tell the test (see
# `saga_processes.stop`), which signals a worker only after that.
if os.environ.get("DOCKYARD_TEST_LOADED_DIR"):
    from pathlib import Path

    (Path(os.environ["DOCKYARD_TEST_LOADED_DIR"]) / str(os.getpid())).touch()
