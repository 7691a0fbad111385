"""A step's circuit breaker and timeout on ``SqlSagaBackend`` (SQLite, PostgreSQL): the
breaker's decision is stored, so another process resumes the branch it chose, and a timed-out
attempt's writes roll back with it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import sqlalchemy as sa
from checkout_sagas import Journal, build, run, sql_module
from guarded_sagas import FakeClock, assert_resumed_the_fallback, trail, tripped, with_breaker

from dockyard import App, module
from dockyard.retry import CircuitBreaker, RetryPolicy
from dockyard.sagas import (
    Saga,
    SagaControl,
    SagaRecord,
    Sagas,
    SagaSettings,
    SagasModule,
    SagaStatus,
    SagaStep,
    step,
)
from dockyard.sql import SqlSagaBackend, SqlUnitOfWork
from dockyard.testing.pytest import IsolatedDatabase

own_tables = sa.MetaData()
attempts = sa.Table(
    "test_timed_writes",
    own_tables,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("saga_id", sa.String(64), nullable=False),
)


async def test_an_open_breaker_takes_the_fallback_then_a_probe_closes_it(
    isolated: IsolatedDatabase,
) -> None:
    clock = FakeClock()
    breaker = tripped("card", clock, reset_after=30)
    saga = with_breaker(breaker)
    journal = Journal()
    async with build(journal, [saga], sql=sql_module(isolated)) as app:
        fallen_back = await run(app, saga, "o-1")
        clock.now += 30
        probed = await run(app, saga, "o-2")
    assert trail(fallen_back) == [
        ("reserve", "completed", 1),
        ("charge", "circuit_open", 1),
        ("charge-backup", "completed", 1),
        ("ship", "completed", 1),
    ]
    assert [step for step, _, _ in trail(probed)] == ["reserve", "charge", "ship"]
    assert journal.calls == ["reserve", "charge-backup", "ship", "reserve", "charge", "ship"]


async def wait_until_finished(app: App, saga_id: str) -> SagaRecord:
    """Run what is due until ``saga_id`` has finished (a retry may be due a little later)."""
    control = await app.get(SagaControl)
    async with asyncio.timeout(60):
        while True:
            await control.run_due()
            record = await control.get(saga_id)
            if not record.status.is_active:
                return record
            await asyncio.sleep(0.05)


async def test_another_process_resumes_the_branch_the_breaker_chose(
    isolated: IsolatedDatabase,
) -> None:
    # The first app's breaker is open and its fallback fails once (retried a moment later);
    # the app ends. The next one (a new process: its breaker is closed) takes the instance
    # over from the database and goes on with the fallback, never calling `charge`.
    later = SagaSettings(retry=RetryPolicy(2, initial_delay=0.3, jitter=False))
    first = with_breaker(tripped("card", FakeClock()))
    journal = Journal(fail={"charge-backup": 1})
    async with build(journal, [first], sql=sql_module(isolated), settings=later) as app:
        waiting = await run(app, first, "o-1")
    assert (waiting.step, waiting.status) == ("charge-backup", SagaStatus.RUNNING)

    second = with_breaker(CircuitBreaker("card"))
    journal = Journal()
    async with build(journal, [second], sql=sql_module(isolated), settings=later) as app:
        record = await wait_until_finished(app, "o-1")
    assert_resumed_the_fallback(record, journal)


HANGS: dict[str, int] = {}
"""Attempts left that hang after writing, per saga id."""


@dataclass
class Order:
    order_id: str


class WriteThenHang(SagaStep[Order]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def act(self, state: Order) -> None:
        await self._uow.connection.execute(sa.insert(attempts).values(saga_id=state.order_id))
        if HANGS.get(state.order_id, 0):
            HANGS[state.order_id] -= 1
            await asyncio.Event().wait()


TIMED = Saga(
    "timed-write",
    version=1,
    state=Order,
    # generous: an attempt that does not hang must finish within it on a loaded machine
    steps=[step("write", WriteThenHang, timeout=5)],
    retry=RetryPolicy(2, initial_delay=0, jitter=False),
)


async def test_a_timed_out_attempt_is_cancelled_and_its_writes_roll_back(
    isolated: IsolatedDatabase,
) -> None:
    HANGS["t-1"] = 1  # the first attempt writes, then hangs; the retry completes
    sql = sql_module(isolated)
    sagas = SagasModule.register(sagas=[TIMED], backend=SqlSagaBackend(), imports=[sql])

    @module(imports=[sql, sagas])
    class Root: ...

    database = isolated.database()
    try:
        async with App.build(Root) as app:
            async with app.scope() as scope:
                start = (await scope.get(Sagas)).start
                await start(TIMED, Order("t-1"), saga_id="t-1")
            control = await app.get(SagaControl)
            await control.run_due()
            retried = await control.get("t-1")
        async with database.engine.connect() as connection:
            rows = (await connection.execute(sa.select(attempts.c.saga_id))).scalars().all()
    finally:
        await database.dispose()
    assert retried.status is SagaStatus.COMPLETED
    assert trail(retried) == [("write", "failed", 1), ("write", "completed", 2)]
    assert retried.log[0].error is not None
    assert retried.log[0].error.startswith("StepTimeoutError: Step `write` of saga `t-1`")
    assert rows == ["t-1"]  # one row: the timed-out attempt's write was rolled back
