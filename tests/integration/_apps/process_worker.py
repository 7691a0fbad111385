"""A worker feeding an event-store-sourced process manager from the event log, for the crash
test. Run by ``dockyard worker integration._apps.process_worker:app``; the database comes from
``DOCKYARD_TEST_PROCESS_URL`` and the PostgreSQL schema from ``DOCKYARD_TEST_SCHEMA``.

Each deposit's handler inserts a row into ``test_process_effects`` keyed by the deposit's
number: a deposit applied twice would fail its batch (and stall the projection).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dockyard.app import App
from dockyard.modules import module
from dockyard.projections import ProjectionsModule, RunnerSettings
from dockyard.retry import RetryPolicy
from dockyard.sagas import (
    Process,
    ProcessHandler,
    ProcessManager,
    ProcessManagersModule,
    process_projection,
    starts,
)
from dockyard.sql import SqlModule, SqlUnitOfWork

WRITER = f"pid-{os.getpid()}"

tables = sa.MetaData()
effects = sa.Table(
    "test_process_effects",
    tables,
    sa.Column("number", sa.Integer(), primary_key=True),
    sa.Column("account", sa.String(32), nullable=False),
    sa.Column("writer", sa.String(32), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Deposited:
    account: str
    number: int


@dataclass
class Tally:
    deposits: int = 0


class OnDeposited(ProcessHandler[Deposited, Tally]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def handle(self, message: Deposited, process: Process[Tally]) -> None:
        row = {"number": message.number, "account": message.account, "writer": WRITER}
        await self._uow.connection.execute(sa.insert(effects).values(**row))
        process.state.deposits += 1
        await asyncio.sleep(0.002)  # room for a kill in the middle of a batch


TALLY = ProcessManager(
    "tally",
    version=1,
    state=Tally,
    handlers=[starts(Deposited, OnDeposited, key="account")],
    source="event_store",
)


def engine_options(schema: str | None) -> dict[str, Any]:
    if schema is None:
        return {}
    return {"connect_args": {"server_settings": {"search_path": schema}}}


def build(url: str, schema: str | None = None) -> App:
    sql = SqlModule.register(url, **engine_options(schema))
    projections = ProjectionsModule.register(
        projections=[process_projection(TALLY)],
        imports=[SqlModule, ProcessManagersModule],
        settings=RunnerSettings(batch_size=20, lease_ttl=1.5, retry=RetryPolicy(3, 0.01)),
    )

    @module(
        imports=[
            sql,
            ProcessManagersModule.register(processes=[TALLY], imports=[SqlModule]),
            projections,
        ]
    )
    class ProcessWorker: ...

    return App.build(ProcessWorker)


def app() -> App:
    return build(os.environ["DOCKYARD_TEST_PROCESS_URL"], os.environ.get("DOCKYARD_TEST_SCHEMA"))
