"""How many round trips to PostgreSQL a 3-step saga costs, counted on the wire.

A proxy in front of the server (``bench/_wire.py``) counts the messages after which a client
waits for the server (``Sync``, ``Query``). A saga with trivial steps started beside a runner
costs six: ``BEGIN``, ``INSERT``, ``COMMIT`` in the caller's scope, then one ``UPDATE`` per
step, each sent alone (a step that writes nothing has nothing to share a transaction with).
A step that writes adds its statements plus ``BEGIN`` and ``COMMIT``: its checkpoint then
goes inside its transaction. The runner claims on its poll, not per saga.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa
from bench._wire import WireCounter
from sqlalchemy.engine import make_url

from dockyard import App, module
from dockyard.sagas import Saga, Sagas, SagaSettings, SagasModule, SagaStep, step
from dockyard.sql import SqlModule, SqlSagaBackend, SqlUnitOfWork
from dockyard.testing.pytest import IsolatedDatabase, isolated_database
from services import POSTGRES_URL, require_service

pytestmark = pytest.mark.postgres

SAGAS = 20


@dataclass
class Errand:
    errand_id: str


DONE: dict[str, asyncio.Future[None]] = {}


class Nothing(SagaStep[Errand]):
    async def act(self, state: Errand) -> None:
        pass


class Write(SagaStep[Errand]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def act(self, state: Errand) -> None:
        await self._uow.connection.execute(
            sa.text("INSERT INTO errand_writes (errand_id) VALUES (:id)"), {"id": state.errand_id}
        )


class Done(SagaStep[Errand]):
    """Writes nothing; tells the test once its checkpoint has committed."""

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def act(self, state: Errand) -> None:
        future = DONE[state.errand_id]
        self._uow.after_commit(lambda: future.set_result(None))


TRIVIAL = Saga(
    "trivial",
    version=1,
    state=Errand,
    steps=[step("one", Nothing), step("two", Nothing), step("three", Done)],
)
WRITING = Saga(
    "writing",
    version=1,
    state=Errand,
    steps=[step("one", Write), step("two", Nothing), step("three", Done)],
)


@pytest_asyncio.fixture
async def isolated(tmp_path: Path) -> AsyncIterator[IsolatedDatabase]:
    require_service("postgres")
    async with isolated_database(POSTGRES_URL, tmp_path) as found:
        database = found.database()
        try:
            await database.create_tables()
            async with database.engine.begin() as connection:
                await connection.exec_driver_sql("CREATE TABLE errand_writes (errand_id text)")
        finally:
            await database.dispose()
        yield found


@pytest_asyncio.fixture
async def wire(isolated: IsolatedDatabase) -> AsyncIterator[WireCounter]:
    url = make_url(isolated.url)
    async with WireCounter(url.host or "127.0.0.1", url.port or 5432) as counter:
        yield counter


def _app(isolated: IsolatedDatabase, wire: WireCounter) -> App:
    url = make_url(isolated.url).set(host="127.0.0.1", port=wire.listen_port)
    sql = SqlModule.register(
        url.render_as_string(hide_password=False),
        pool_size=2,
        max_overflow=0,
        **isolated.engine_options,
    )
    sagas = SagasModule.register(
        sagas=[TRIVIAL, WRITING],
        backend=SqlSagaBackend(),
        imports=[sql],
        # no lease renewal while it runs, and few polls: at most four in ten seconds
        settings=SagaSettings(lease_ttl=300.0, max_poll_interval=60.0),
    )

    @module(imports=[sql, sagas])
    class Errands: ...

    return App.build(Errands)


async def _round_trips_per_saga(
    isolated: IsolatedDatabase, wire: WireCounter, saga: Saga[Errand]
) -> float:
    async with _app(isolated, wire) as app:
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))

        async def run(errand_id: str) -> None:
            done = DONE[errand_id] = asyncio.get_running_loop().create_future()
            async with app.scope() as scope:
                await (await scope.get(Sagas)).start(saga, Errand(errand_id), saga_id=errand_id)
            await done

        try:
            async with asyncio.timeout(60):
                while not app.health().services:  # noqa: ASYNC110 - the runner is up
                    await asyncio.sleep(0.01)
                for n in range(5):  # statements prepared, connections open
                    await run(f"warm-{saga.name}-{n}")
                await asyncio.sleep(0.3)  # the runner's first polls, fast after a start, are over
                wire.reset()
                for n in range(SAGAS):
                    await run(f"{saga.name}-{n}")
                trips = wire.round_trips
        finally:
            stop.set()
            await worker
    return trips / SAGAS


async def test_a_3_step_saga_with_trivial_steps_costs_six_round_trips(
    isolated: IsolatedDatabase, wire: WireCounter
) -> None:
    per_saga = await _round_trips_per_saga(isolated, wire, TRIVIAL)
    assert 6 <= per_saga <= 6 + 4 / SAGAS, per_saga  # and a few polls of the runner


async def test_a_step_that_writes_adds_its_statement_and_its_transaction(
    isolated: IsolatedDatabase, wire: WireCounter
) -> None:
    per_saga = await _round_trips_per_saga(isolated, wire, WRITING)
    assert 9 <= per_saga <= 9 + 4 / SAGAS, per_saga  # + BEGIN, INSERT, COMMIT in step one
