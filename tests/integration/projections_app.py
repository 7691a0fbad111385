"""A SQL app with a catch-up projection into a table, for the projection integration tests.

Also run as a script by the multi-process test: ``python -m integration.projections_app
URL SCHEMA`` runs the app's background services until SIGTERM (or SIGKILL).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from dockyard import messaging
from dockyard.app import App
from dockyard.di import scoped, singleton
from dockyard.eventsourcing import EventStore, RecordedEvent
from dockyard.modules import module
from dockyard.projections import (
    CheckpointStore,
    EventNotifier,
    LeaseStore,
    Projection,
    ProjectionsModule,
    RunnerSettings,
    handles,
)
from dockyard.retry import RetryPolicy
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import (
    Database,
    PostgresEventNotifier,
    SqlCheckpointStore,
    SqlEventStore,
    SqlLeaseStore,
    SqlUnitOfWork,
)

read_models = sa.MetaData()
balances = sa.Table(
    "test_balances",
    read_models,
    sa.Column("account", sa.String(50), primary_key=True),
    sa.Column("balance", sa.BigInteger(), nullable=False),
    sa.Column("events", sa.BigInteger(), nullable=False),
    sa.Column("writer", sa.String(100), nullable=True),
)
applied = sa.Table(
    "test_applied",
    read_models,
    sa.Column("global_position", sa.BigInteger(), primary_key=True),
    sa.Column("writer", sa.String(100), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Deposited:
    account: str
    amount: int


@dataclass(frozen=True, slots=True)
class Noted:
    account: str
    text: str


SERIALIZER = Serializer(TypeRegistry([Deposited, Noted]))
WRITER = f"pid-{os.getpid()}"
POISON: set[int] = set()
"""Amounts whose events the projection fails on (tests put values here)."""


class Balances(Projection):
    """Counts deposits per account; also records every applied position (primary key: a second
    application of one event would fail the batch)."""

    name = "balances"

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow
        self.rows: list[dict[str, object]] = []

    @handles
    async def deposited(self, event: Deposited, recorded: RecordedEvent) -> None:
        if event.amount in POISON:
            raise ValueError(f"poisoned amount {event.amount}")
        self.rows.append({"global_position": recorded.global_position, "writer": WRITER})
        statement = sa.update(balances).where(balances.c.account == event.account)
        result = await self.uow.connection.execute(
            statement.values(
                balance=balances.c.balance + event.amount,
                events=balances.c.events + 1,
                writer=WRITER,
            )
        )
        if result.rowcount == 0:
            await self.uow.connection.execute(
                sa.insert(balances).values(
                    account=event.account, balance=event.amount, events=1, writer=WRITER
                )
            )

    async def flush(self) -> None:
        if self.rows:
            await self.uow.connection.execute(sa.insert(applied), self.rows)
            self.rows = []

    async def reset(self) -> None:
        await self.uow.connection.execute(sa.delete(balances))
        await self.uow.connection.execute(sa.delete(applied))


def build_app(
    database: Database,
    *,
    settings: RunnerSettings | None = None,
    projections: Sequence[type[Projection]] = (Balances,),
    serializer: Serializer = SERIALIZER,
) -> App:
    async def unit_of_work(db: Database) -> AsyncIterator[SqlUnitOfWork]:
        async with db.unit_of_work() as uow:
            yield uow

    def transactional(uow: SqlUnitOfWork) -> messaging.UnitOfWork:
        return uow

    def event_store(uow: SqlUnitOfWork) -> EventStore:
        return SqlEventStore(uow, serializer)

    def checkpoints(uow: SqlUnitOfWork) -> CheckpointStore:
        return SqlCheckpointStore(uow)

    def leases(db: Database) -> LeaseStore:
        return SqlLeaseStore(db)

    def notifier(db: Database) -> EventNotifier:
        return PostgresEventNotifier(db)

    providers = [
        singleton(Database, lambda: database),
        scoped(unit_of_work),
        scoped(transactional),
        scoped(event_store),
        scoped(checkpoints),
        singleton(leases),
    ]
    if database.dialect == "postgresql":
        providers.append(singleton(notifier))

    @module(
        providers=providers,
        exports=[
            Database,
            SqlUnitOfWork,
            messaging.UnitOfWork,
            EventStore,
            CheckpointStore,
            LeaseStore,
            *([EventNotifier] if database.dialect == "postgresql" else []),
        ],
    )
    class Infra: ...

    registered = ProjectionsModule.register(
        projections=list(projections),
        imports=[Infra],
        settings=settings
        or RunnerSettings(batch_size=100, lease_ttl=1.5, retry=RetryPolicy(3, 0.01)),
    )

    @module(imports=[Infra, registered])
    class Root: ...

    return App.build(Root)


async def create_read_models(database: Database) -> None:
    async with database.engine.begin() as connection:
        await connection.run_sync(read_models.create_all)


async def _serve(url: str, schema: str) -> None:
    database = Database(url, connect_args={"server_settings": {"search_path": schema}})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    app = build_app(database)
    async with app:
        services = app.background_services()
        print("ready", flush=True)
        await asyncio.gather(*(s.run(stop) for s in services))
    await database.dispose()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2]))
