"""The event-store-sourced process manager on SQLite and PostgreSQL: fed by a catch-up
projection, each event applied once with the checkpoint, also across a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard import App, module
from dockyard.eventsourcing import ANY, EventStore
from dockyard.exceptions import InvalidSagaError
from dockyard.projections import ProjectionsModule
from dockyard.sagas import (
    Process,
    Processes,
    ProcessHandler,
    ProcessManager,
    ProcessManagersModule,
    ProcessStatus,
    handles,
    process_projection,
    starts,
)
from dockyard.sql import SqlModule, SqlUnitOfWork
from dockyard.testing import wait_for_projections
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from services import POSTGRES_URL, require_service

own_tables = sa.MetaData()
effects = sa.Table(
    "test_account_effects",
    own_tables,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("amount", sa.Integer(), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Opened:
    account: str


@dataclass(frozen=True, slots=True)
class Deposited:
    account: str
    amount: int


@dataclass(frozen=True, slots=True)
class Closed:
    account: str


@dataclass
class Balance:
    total: int = 0
    deposits: int = 0


class OnOpened(ProcessHandler[Opened, Balance]):
    async def handle(self, message: Opened, process: Process[Balance]) -> None:
        pass


class OnDeposited(ProcessHandler[Deposited, Balance]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def handle(self, message: Deposited, process: Process[Balance]) -> None:
        await self._uow.connection.execute(
            sa.insert(effects).values(account=message.account, amount=message.amount)
        )
        process.state.total += message.amount
        process.state.deposits += 1


class OnClosed(ProcessHandler[Closed, Balance]):
    async def handle(self, message: Closed, process: Process[Balance]) -> None:
        process.complete()


ACCOUNTS = ProcessManager(
    "accounts",
    version=1,
    state=Balance,
    handlers=[
        starts(Opened, OnOpened, key="account"),
        handles(Deposited, OnDeposited, key="account"),
        handles(Closed, OnClosed, key="account"),
    ],
    source="event_store",
)


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def isolated(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[IsolatedDatabase]:
    url = None
    if request.param == "postgres":
        require_service("postgres")
        url = POSTGRES_URL
    async with isolated_database(url, tmp_path) as found:
        database = found.database()
        try:
            await database.create_tables()
            async with database.engine.begin() as connection:
                await connection.run_sync(own_tables.create_all)
        finally:
            await database.dispose()
        yield found


def build(isolated: IsolatedDatabase) -> App:
    sql = (
        isolated.sql_module()
        if isolated.schema is None
        else isolated.sql_module(pool_size=3, max_overflow=2)
    )

    @module(
        imports=[
            sql,
            ProcessManagersModule.register(processes=[ACCOUNTS], imports=[SqlModule]),
            ProjectionsModule.register(
                projections=[process_projection(ACCOUNTS)],
                imports=[SqlModule, ProcessManagersModule],
            ),
        ]
    )
    class Root: ...

    return App.build(Root)


async def append(app: App, stream: str, *events: object) -> None:
    async with app.scope() as scope:
        store = await scope.get(EventStore)
        await store.append(stream, list(events), ANY)


async def balance(app: App, account: str) -> tuple[ProcessStatus, Balance] | None:
    async with app.scope() as scope:
        found = await (await scope.get(Processes)).get(ACCOUNTS, account)
    return None if found is None else (found.status, found.state)


async def effect_rows(app: App) -> int:
    async with app.scope() as scope:
        uow = await scope.get(SqlUnitOfWork)
        return int(
            (
                await uow.connection.execute(sa.select(sa.func.count()).select_from(effects))
            ).scalar_one()
        )


async def test_each_event_is_applied_once_also_across_a_restart(isolated: IsolatedDatabase) -> None:
    async with build(isolated) as app:
        await append(app, "Account-a", Opened("a"), Deposited("a", 5), Deposited("a", 7))
        await append(app, "Account-b", Deposited("b", 1))  # before its start: ignored
        await append(app, "Account-b", Opened("b"), Deposited("b", 2), Closed("b"))
        await append(app, "Account-b", Deposited("b", 100))  # after completion: ignored
        await wait_for_projections(app)
        assert await balance(app, "a") == (ProcessStatus.ACTIVE, Balance(12, 2))
        assert await balance(app, "b") == (ProcessStatus.COMPLETED, Balance(2, 1))
        await app.publish(Deposited("a", 1000))  # published, not stored: not its source
        assert await balance(app, "a") == (ProcessStatus.ACTIVE, Balance(12, 2))

    async with build(isolated) as app:  # a restart reads on from the checkpoint
        await append(app, "Account-a", Deposited("a", 3))
        await wait_for_projections(app)
        assert await balance(app, "a") == (ProcessStatus.ACTIVE, Balance(15, 3))
        assert await effect_rows(app) == 4  # 5, 7, 2, 3: each once


def test_an_event_store_process_manager_needs_keys_from_the_event() -> None:
    no_key = ProcessManager(
        "accounts",
        version=1,
        state=Balance,
        handlers=[starts(Opened, OnOpened)],
        source="event_store",
    )
    with pytest.raises(InvalidSagaError, match="has no envelope; give key="):
        ProcessManagersModule.register(processes=[no_key])
    messages = ProcessManager(
        "accounts", version=1, state=Balance, handlers=[starts(Opened, OnOpened, key="account")]
    )
    with pytest.raises(ValueError, match='declare it with `source="event_store"`'):
        process_projection(messages)
