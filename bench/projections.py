"""Catch-up projections: how fast a simple SQL read model is rebuilt from the log, PostgreSQL.

Contenders, in one process run, over the same 20,000 stored events (``dockyard_events``):

* raw asyncpg (baseline, the floor) — ``SELECT`` 1,000 rows after the checkpoint, decode with
  msgspec, ``executemany`` the read-model rows, ``UPDATE`` the checkpoint, ``COMMIT``: the same
  work and the same guarantees as a dockyard batch, without a framework;
* dockyard — ``ProjectionControl.rebuild`` then ``catch_up``: a ``Projection`` buffering rows in
  its handler and writing them in ``flush()``, batches of 1,000, checkpoint in the same
  transaction, fence, lease, head read per batch.

eventsourcing 9.5 is not compared here: its ``ProjectionRunner`` processes one event per
transaction through a thread, so a like-for-like setup (same read model, same batching) needs
an eventsourcing-specific tracking recorder; that is future work.

Run: ``make bench ARGS=projections``. Needs PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import sqlalchemy as sa

from bench._harness import Result, Scenario, print_table
from dockyard import messaging
from dockyard.app import App
from dockyard.di import scoped, singleton
from dockyard.eventsourcing import NO_STREAM, EventStore
from dockyard.modules import module
from dockyard.projections import (
    CheckpointStore,
    LeaseStore,
    Projection,
    ProjectionControl,
    ProjectionsModule,
    RunnerSettings,
    handles,
)
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlCheckpointStore, SqlEventStore, SqlLeaseStore, UnitOfWork

DSN = "postgresql://postgres@127.0.0.1:5432/test"
URL = DSN.replace("postgresql://", "postgresql+asyncpg://")
EVENTS = 20_000
BATCH = 1_000
ROUNDS = 5

read_model = sa.MetaData()
deposits = sa.Table(
    "bench_deposits",
    read_model,
    sa.Column("global_position", sa.BigInteger(), primary_key=True),
    sa.Column("account", sa.String(50), nullable=False),
    sa.Column("amount", sa.BigInteger(), nullable=False),
)
raw_deposits = sa.Table("bench_raw_deposits", read_model, *(c.copy() for c in deposits.c))
raw_checkpoint = sa.Table(
    "bench_raw_checkpoint",
    read_model,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("position", sa.BigInteger(), nullable=False),
)


@dataclass(frozen=True, slots=True)
class Deposited:
    account: str
    amount: int


SERIALIZER = Serializer(TypeRegistry([Deposited]))


class Deposits(Projection):
    name = "bench-deposits"

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.rows: list[dict[str, Any]] = []

    @handles
    async def deposited(self, event: Deposited, recorded: Any) -> None:
        self.rows.append(
            {"global_position": recorded.global_position, "account": event.account,
             "amount": event.amount}
        )  # fmt: skip

    async def flush(self) -> None:
        if self.rows:
            await self.uow.connection.execute(sa.insert(deposits), self.rows)
            self.rows = []

    async def reset(self) -> None:
        await self.uow.connection.execute(sa.delete(deposits))


def build_app(database: Database) -> App:
    async def unit_of_work(db: Database) -> AsyncIterator[UnitOfWork]:
        async with db.unit_of_work() as uow:
            yield uow

    def transactional(uow: UnitOfWork) -> messaging.UnitOfWork:
        return uow

    def event_store(uow: UnitOfWork) -> EventStore:
        return SqlEventStore(uow, SERIALIZER)

    def checkpoints(uow: UnitOfWork) -> CheckpointStore:
        return SqlCheckpointStore(uow)

    def leases(db: Database) -> LeaseStore:
        return SqlLeaseStore(db)

    @module(
        providers=[
            singleton(Database, lambda: database),
            scoped(unit_of_work),
            scoped(transactional),
            scoped(event_store),
            scoped(checkpoints),
            singleton(leases),
        ],
        exports=[UnitOfWork, messaging.UnitOfWork, EventStore, CheckpointStore, LeaseStore],
    )
    class Infra: ...

    projections = ProjectionsModule.register(
        projections=[Deposits], imports=[Infra], settings=RunnerSettings(batch_size=BATCH)
    )

    @module(imports=[Infra, projections])
    class Root: ...

    return App.build(Root)


async def _raw_catch_up(connection: asyncpg.Connection) -> None:
    decode = msgspec.json.Decoder(Deposited).decode
    await connection.execute("DELETE FROM bench_raw_deposits")
    await connection.execute("UPDATE bench_raw_checkpoint SET position = 0")
    position = 0
    while True:
        async with connection.transaction():
            rows = await connection.fetch(
                "SELECT global_position, data FROM dockyard_events WHERE global_position > $1 "
                "AND global_position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint "
                "<< 16) ORDER BY global_position LIMIT $2",
                position,
                BATCH,
            )
            if not rows:
                return
            await connection.execute(
                "SELECT position FROM bench_raw_checkpoint WHERE name = 'raw' FOR UPDATE"
            )
            values = []
            for row in rows:
                event = decode(row["data"])
                values.append((row["global_position"], event.account, event.amount))
            await connection.executemany(
                "INSERT INTO bench_raw_deposits VALUES ($1, $2, $3)", values
            )
            position = rows[-1]["global_position"]
            await connection.execute(
                "UPDATE bench_raw_checkpoint SET position = $1 WHERE name = 'raw'", position
            )


async def _time(run: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await run()
    return time.perf_counter() - started


async def main() -> None:
    schema = f"dockyard_bench_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(DSN)
    except OSError as error:
        print(f"\n## projections: skipped, PostgreSQL is not answering ({error})")
        return
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    database = Database(URL, connect_args={"server_settings": {"search_path": schema}})
    raw = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    try:
        await database.create_tables()
        async with database.engine.begin() as connection:
            await connection.run_sync(read_model.create_all)
            await connection.execute(sa.insert(raw_checkpoint).values(name="raw", position=0))
        for start in range(0, EVENTS, 1000):
            async with database.unit_of_work() as uow:
                store = SqlEventStore(uow, SERIALIZER)
                for stream in range(start, start + 1000, 100):
                    events = [Deposited(f"a{stream}", i) for i in range(100)]
                    await store.append(f"Account-{stream}", events, NO_STREAM)
        async with build_app(database) as app:
            control = await app.get(ProjectionControl)

            async def dockyard() -> None:
                await control.rebuild(Deposits.name)
                await control.catch_up(Deposits.name)

            await dockyard()  # warm-up
            await _raw_catch_up(raw)
            samples: dict[str, list[float]] = {"raw asyncpg": [], "dockyard": []}
            for _ in range(ROUNDS):
                samples["raw asyncpg"].append(await _time(lambda: _raw_catch_up(raw)))
                samples["dockyard"].append(await _time(dockyard))
            async with database.engine.connect() as connection:
                count = (
                    await connection.execute(sa.select(sa.func.count()).select_from(deposits))
                ).scalar()
            assert count == EVENTS, count
        results = [
            Result(
                name,
                statistics.median(times) / EVENTS * 1e6,
                times,
                f"{EVENTS / statistics.median(times):,.0f} events/s",
            )
            for name, times in samples.items()
        ]
        print_table(
            Scenario(
                f"catch-up of a SQL read model, {EVENTS:,} events, batches of {BATCH:,}, "
                "PostgreSQL",
                baseline="raw asyncpg",
                target="dockyard ≥ 20,000 events/s",
            ),
            results,
        )
    finally:
        await raw.close()
        await database.dispose()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
