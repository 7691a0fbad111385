"""Timers of sagas and process managers: ``AT_ONCE`` due at once, drained by one worker.

Part of ``python -m bench sagas``. Target (issue #14): ≥ 2,000 drained per second.

* **saga timers**: ``AT_ONCE`` instances of a one-step saga, all due now, with no runner
  running; then one worker (``App.run_worker``, ``SagaSettings(concurrency=CONCURRENCY)``)
  claims them by their stored due time and runs the step with its checkpoint. A retry's
  backoff is the same thing to the runner: a due time stored on the instance, claimed when it
  has passed. Drained = the step's checkpoint committed.
* **process-manager timeouts**: ``AT_ONCE`` process-manager instances, each with a pending
  timeout (``Process.set_timeout``: a scheduled outbox message), all made due now; then one
  worker's relay promotes and publishes them (in-memory transport) and its consumer hands each
  to the instance's ``on_timeout`` handler, which completes it in its own transaction.
  Drained = that transaction committed.

The set-up (starting the instances) is not timed; the clock runs from the worker's start to
the last commit, so it includes the worker's start-up (under 0.1 s).

* **floor**: hand-written on asyncpg, the saga timers' work and no more: claim up to
  ``CONCURRENCY`` due rows in one statement, fire each with one fenced autocommit ``UPDATE``
  on a pool of ``POOL``, claim again. What this machine and server allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from dockyard import App, module
from dockyard.consumer import ConsumerModule, listen
from dockyard.outbox import OutboxModule
from dockyard.sagas import (
    Process,
    ProcessHandler,
    ProcessManager,
    ProcessManagersModule,
    Saga,
    Sagas,
    SagaSettings,
    SagasModule,
    SagaStep,
    on_timeout,
    starts,
    step,
)
from dockyard.sql import Database, SqlModule, SqlSagaBackend, SqlUnitOfWork
from dockyard.transport.memory import InMemoryTransport

AT_ONCE = 10_000
CONCURRENCY = 64
"""The runner's and the consumer's concurrency (the sagas bench's dockyard runner uses 64)."""
POOL = 20
BATCH = 500
"""Instances started per transaction in the (untimed) set-up."""
TIMEOUT = 600.0


class _Drained:
    """Counts commits; ``done`` is set at ``AT_ONCE``."""

    count = 0
    done: asyncio.Event | None = None

    @classmethod
    def reset(cls) -> asyncio.Event:
        cls.count, cls.done = 0, asyncio.Event()
        return cls.done

    @classmethod
    def one(cls) -> None:
        cls.count += 1
        if cls.count >= AT_ONCE and cls.done is not None:
            cls.done.set()


# -- saga timers -------------------------------------------------------------------------------


@dataclass
class Timer:
    timer_id: str


class Fire(SagaStep[Timer]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def act(self, state: Timer) -> None:
        self._uow.after_commit(_Drained.one)


TIMER = Saga("timer", version=1, state=Timer, steps=[step("fire", Fire)])


def _options(schema: str) -> dict[str, Any]:
    return {
        "pool_size": POOL,
        "max_overflow": 0,
        "connect_args": {"server_settings": {"search_path": schema}},
    }


async def _tables(url: str, schema: str) -> None:
    database = Database(url, **_options(schema))
    try:
        await database.create_tables()
    finally:
        await database.dispose()


@dataclass(frozen=True, slots=True)
class Drained:
    per_second: float
    cpu_ms: float
    """CPU time of this process (the worker's, and the bench's) per timer drained."""


async def _drain(app: App, done: asyncio.Event) -> Drained:
    """Run one worker until ``done``."""
    stop = asyncio.Event()
    started, cpu = time.perf_counter(), time.process_time()
    worker = asyncio.create_task(app.run_worker(stop=stop))
    try:
        await asyncio.wait_for(done.wait(), TIMEOUT)
        return Drained(
            AT_ONCE / (time.perf_counter() - started),
            (time.process_time() - cpu) * 1e3 / AT_ONCE,
        )
    finally:
        stop.set()
        await worker


async def saga_timers(url: str, schema: str) -> Drained:
    await _tables(url, schema)
    sql = SqlModule.register(url, **_options(schema))
    sagas = SagasModule.register(
        sagas=[TIMER],
        backend=SqlSagaBackend(),
        imports=[sql],
        settings=SagaSettings(concurrency=CONCURRENCY),
    )

    @module(imports=[sql, sagas])
    class Timers: ...

    app = App.build(Timers)
    done = _Drained.reset()
    async with app:
        for first in range(0, AT_ONCE, BATCH):  # no runner yet: they wait, due
            async with app.scope() as scope:
                started = await scope.get(Sagas)
                for n in range(first, first + BATCH):
                    await started.start(TIMER, Timer(f"t-{n}"), saga_id=f"t-{n}")
        return await _drain(app, done)


# -- process-manager timeouts ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    key: str


@dataclass(frozen=True, slots=True)
class Expired:
    key: str


@dataclass
class Watch:
    expired: bool = False


class OnOpened(ProcessHandler[Opened, Watch]):
    async def handle(self, message: Opened, process: Process[Watch]) -> None:
        process.set_timeout(Expired(message.key), after=3600)  # made due by the bench


class OnExpired(ProcessHandler[Expired, Watch]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def handle(self, message: Expired, process: Process[Watch]) -> None:
        process.state.expired = True
        process.complete()
        self._uow.after_commit(_Drained.one)


WATCH = ProcessManager(
    "watch",
    version=1,
    state=Watch,
    handlers=[starts(Opened, OnOpened, key="key"), on_timeout(Expired, OnExpired, key="key")],
    timeout_destination="bench-watch-timeouts",
)


async def process_timeouts(url: str, dsn: str, schema: str) -> Drained:
    await _tables(url, schema)
    sql = SqlModule.register(url, **_options(schema))

    @module(
        imports=[
            sql,
            OutboxModule.register(transport=InMemoryTransport()),
            ConsumerModule.register(
                endpoints=[listen("bench-watch-timeouts", group="bench", concurrency=CONCURRENCY)]
            ),
            ProcessManagersModule.register(processes=[WATCH], imports=[sql]),
        ]
    )
    class Watches: ...

    app = App.build(Watches)
    done = _Drained.reset()
    async with app:
        gate = asyncio.Semaphore(POOL - 2)

        async def open_one(n: int) -> None:
            async with gate:
                await app.publish(Opened(f"w-{n}"))

        await asyncio.gather(*(open_one(n) for n in range(AT_ONCE)))
        raw = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            made_due = await raw.execute(
                "UPDATE dockyard_outbox_scheduled SET deliver_at = extract(epoch from now())"
            )
            assert made_due == f"UPDATE {AT_ONCE}", made_due
            await raw.execute("ANALYZE dockyard_outbox_scheduled")
        finally:
            await raw.close()
        return await _drain(app, done)


# -- the floor ---------------------------------------------------------------------------------

_FLOOR_TABLE = """CREATE TABLE floor_timers (
    timer_id text PRIMARY KEY, status text NOT NULL, version bigint NOT NULL, owner text,
    lease_until double precision, due_at double precision NOT NULL
)"""
_FLOOR_INDEX = "CREATE INDEX ON floor_timers (due_at) WHERE status = 'running'"
_NOW = "extract(epoch from now())"
_FLOOR_CLAIM = (
    "WITH due AS MATERIALIZED (SELECT timer_id FROM floor_timers WHERE status = 'running' "
    f"AND due_at <= {_NOW} AND (owner IS NULL OR lease_until < {_NOW}) ORDER BY due_at "
    "LIMIT $2 FOR UPDATE SKIP LOCKED) "
    f"UPDATE floor_timers SET owner = $1, lease_until = {_NOW} + 10, version = version + 1 "
    "WHERE timer_id IN (SELECT timer_id FROM due) RETURNING timer_id, version"
)
_FLOOR_FIRE = (
    "UPDATE floor_timers SET status = 'completed', owner = NULL, version = version + 1 "
    "WHERE timer_id = $1 AND version = $2 AND owner = $3"
)


async def floor_timers(dsn: str, schema: str) -> Drained:
    """Hand-written on an asyncpg pool of ``POOL``: claim up to ``CONCURRENCY`` due rows (one
    statement), fire each with one fenced autocommit ``UPDATE``, claim again."""
    pool = await asyncpg.create_pool(
        dsn, min_size=POOL, max_size=POOL, server_settings={"search_path": schema}
    )
    assert pool is not None
    try:
        await pool.execute(_FLOOR_TABLE)
        await pool.execute(_FLOOR_INDEX)
        now = time.time() - 1
        await pool.copy_records_to_table(
            "floor_timers",
            records=[(f"t-{n}", "running", 1, now) for n in range(AT_ONCE)],
            columns=["timer_id", "status", "version", "due_at"],
        )
        await pool.execute("ANALYZE floor_timers")
        owner = "floor"

        async def fire(timer_id: str, version: int) -> None:
            async with pool.acquire() as connection:
                assert await connection.execute(_FLOOR_FIRE, timer_id, version, owner) == (
                    "UPDATE 1"
                )

        started, cpu, fired = time.perf_counter(), time.process_time(), 0
        while claimed := await pool.fetch(_FLOOR_CLAIM, owner, CONCURRENCY):
            await asyncio.gather(*(fire(row[0], row[1]) for row in claimed))
            fired += len(claimed)
        assert fired == AT_ONCE, fired
        return Drained(
            AT_ONCE / (time.perf_counter() - started),
            (time.process_time() - cpu) * 1e3 / AT_ONCE,
        )
    finally:
        await pool.close()


# -- the run -----------------------------------------------------------------------------------


async def timers(
    url: str, dsn: str, schema_of: Callable[[str], contextlib.AbstractAsyncContextManager[str]]
) -> dict[str, Drained]:
    """Drained per second: saga timers, then process-manager timeouts, each in a fresh schema."""
    kinds: dict[str, Callable[[str], Awaitable[Drained]]] = {
        "saga timers (due instances)": lambda schema: saga_timers(url, schema),
        "process-manager timeouts": lambda schema: process_timeouts(url, dsn, schema),
        "floor (asyncpg, saga timers)": lambda schema: floor_timers(dsn, schema),
    }
    rates: dict[str, Drained] = {}
    for name, drain in kinds.items():
        async with schema_of(name) as schema:
            rates[name] = await drain(schema)
    return rates


def print_timers(rates: dict[str, Drained]) -> None:
    print(f"\n## sagas: timers, {AT_ONCE:,} due at once, drained by one worker (PostgreSQL)")
    print("target: ≥ 2,000/s (dockyard's; the floor shows what this machine allows)")
    for name, drained in rates.items():
        verdict = "met" if drained.per_second >= 2000 else "NOT met"
        print(
            f"  {name:<30} {drained.per_second:>8,.0f}/s  {verdict}  "
            f"({drained.cpu_ms:.2f} ms of this process's CPU per timer)"
        )
    print(
        f"(runner and consumer concurrency {CONCURRENCY}, pool {POOL}; the clock runs from the "
        "worker's start to the last drained commit)"
    )
