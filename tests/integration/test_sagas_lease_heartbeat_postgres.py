"""A saga runner keeps its leases while its steps hold every pooled connection.

Two runners (two apps on one schema), each with a pool of 2 connections and `concurrency=4`,
run steps that keep their transaction open until the lease they started with has ended. A
renewal that waited for a pooled connection behind them would come after the lease ended
and the other runner would take the instance over. Each step watches its own row from a
connection of the test's own and records whether its lease was renewed while it ran: every
one must be, every step attempted once, every effect written once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard import App, module, object_
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
from dockyard.sql import Database, SqlSagaBackend, SqlUnitOfWork
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from services import POSTGRES_URL, require_service

pytestmark = pytest.mark.postgres

LEASE_TTL = 1.5
"""Renewed every 0.5 s; a step holds its transaction for longer than the whole lease."""
SAGAS = 4
WATCH_LIMIT = 30.0
"""How long a step waits to see its lease renewed (a generous bound: it takes ~2 s)."""


@dataclass
class Held:
    saga_id: str
    lease_kept: bool | None = None


class LeaseWatch:
    """Reads the saga rows on a connection of the test's own, outside the apps' pools."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.attempts: Counter[str] = Counter()

    async def renewed_while_held(self, saga_id: str) -> bool:
        """Wait until the lease held when the step began has ended: ``True`` if it was
        renewed meanwhile (still valid), ``False`` as soon as it is seen lapsed."""
        query = sa.text(
            "SELECT lease_until, CAST(extract(epoch FROM clock_timestamp()) AS double "
            "precision) FROM dockyard_sagas WHERE saga_id = :id"
        )
        first: float | None = None
        async with asyncio.timeout(WATCH_LIMIT):
            while True:
                async with self.database.engine.connect() as connection:
                    lease_until, now = (await connection.execute(query, {"id": saga_id})).one()
                if lease_until is None or lease_until < now:
                    return False  # lapsed: another runner may take it over
                if first is None:
                    first = lease_until
                elif now > first:
                    return True  # past the first lease, and renewed
                await asyncio.sleep(0.05)


class HoldConnection(SagaStep[Held]):
    def __init__(self, uow: SqlUnitOfWork, context: SagaStepContext, watch: LeaseWatch) -> None:
        self._uow = uow
        self._context = context
        self._watch = watch

    async def act(self, state: Held) -> None:
        self._watch.attempts[state.saga_id] += 1
        # the step's transaction holds a pooled connection from here to its checkpoint
        await self._uow.connection.execute(
            sa.text("INSERT INTO held_effects (saga_id) VALUES (:id)"), {"id": state.saga_id}
        )
        try:
            state.lease_kept = await self._watch.renewed_while_held(state.saga_id)
        except TimeoutError:
            state.lease_kept = False


HOLD = Saga("hold", version=1, state=Held, steps=[step("hold", HoldConnection)])


@pytest_asyncio.fixture
async def isolated(tmp_path: Path) -> AsyncIterator[IsolatedDatabase]:
    require_service("postgres")
    async with isolated_database(POSTGRES_URL, tmp_path) as found:
        database = found.database()
        try:
            await database.create_tables()
            async with database.engine.begin() as connection:
                await connection.exec_driver_sql(
                    "CREATE TABLE held_effects (saga_id text NOT NULL)"
                )
        finally:
            await database.dispose()
        yield found


def runner_app(isolated: IsolatedDatabase, watch: LeaseWatch) -> App:
    sql = isolated.sql_module(pool_size=2, max_overflow=0)

    @module(providers=[object_(watch)], exports=[LeaseWatch])
    class Watching: ...

    sagas = SagasModule.register(
        sagas=[HOLD],
        backend=SqlSagaBackend(),
        imports=[sql, Watching],
        settings=SagaSettings(concurrency=4, lease_ttl=LEASE_TTL, max_poll_interval=0.05),
    )

    @module(imports=[sql, Watching, sagas])
    class Root: ...

    return App.build(Root)


async def test_leases_are_renewed_while_steps_hold_every_pooled_connection(
    isolated: IsolatedDatabase,
) -> None:
    observer = isolated.database(pool_size=1, max_overflow=0)
    watch = LeaseWatch(observer)
    ids = [f"h-{n}" for n in range(SAGAS)]
    try:
        async with runner_app(isolated, watch) as first, runner_app(isolated, watch) as second:
            async with first.scope() as scope:  # unowned and due: both runners claim
                sagas = await scope.get(Sagas)
                for saga_id in ids:
                    await sagas.start(HOLD, Held(saga_id), saga_id=saga_id)
            stop = asyncio.Event()
            workers = [asyncio.create_task(app.run_worker(stop=stop)) for app in (first, second)]
            control = await first.get(SagaControl)
            try:
                async with asyncio.timeout(180):
                    for saga_id in ids:
                        while (await control.get(saga_id)).status is not SagaStatus.COMPLETED:  # noqa: ASYNC110
                            await asyncio.sleep(0.05)
            finally:
                stop.set()
                await asyncio.gather(*workers)
            records = [await control.get(saga_id) for saga_id in ids]
            async with first.scope() as scope:
                connection = (await scope.get(SqlUnitOfWork)).connection
                effects = Counter(
                    (await connection.execute(sa.text("SELECT saga_id FROM held_effects")))
                    .scalars()
                    .all()
                )
    finally:
        await observer.dispose()

    kept = {r.saga_id: getattr(control.state(r), "lease_kept", None) for r in records}
    assert kept == dict.fromkeys(ids, True)  # no lease lapsed while its step ran
    assert watch.attempts == dict.fromkeys(ids, 1)  # no step taken over and run again
    assert effects == dict.fromkeys(ids, 1)  # no duplicate effect
    assert all([(e.step, e.kind.value, e.attempt) for e in r.log] == [
        ("hold", "completed", 1)
    ] for r in records)  # fmt: skip
