"""Sagas: a 3-step saga with trivial steps, persisted in PostgreSQL, run to completion.

Contenders, each in a schema of its own (dropped after):

* **dockyard**: a saga started in a scope of its own (the caller's transaction: ``INSERT``)
  next to the app's runner (``App.run_worker``), which runs its three steps, each a fenced
  checkpoint. Done when the last checkpoint has committed.
* **python-cqrs** 5.3: ``Saga.transaction`` on ``SqlAlchemySagaStorage`` (asyncpg), steps
  resolved by a plain container; done when the transaction's iteration ends.
* **DBOS** 3.4: an async ``@DBOS.workflow`` of three async ``@DBOS.step`` functions, its
  system database in a schema of its own; done when the workflow returns.
* **floor**: hand-written on an asyncpg pool: one row per instance, one statement per
  checkpoint (``UPDATE … WHERE id AND version AND owner``), a lease taken by a claim:
  ``INSERT``, claim, three checkpoints, each statement alone (autocommit).

Throughput one saga at a time and with 50 in flight, interleaved round by round
(``_harness.run_async``), as sagas/s and ratios; then the database round trips per saga of each
contender, counted by a proxy on the wire (``_wire.py``: ``Sync`` and ``Query`` messages from
the client) over sagas run one at a time after a warm-up, so statement preparation and
connection setup do not count; the write transactions and ``NOTIFY`` statements per saga on
the same wire. Then timers: 10,000 due at once drained by one worker (``_saga_timers.py``).

Run: ``python -m bench sagas`` (or ``make bench ARGS=sagas``). Needs PostgreSQL on
127.0.0.1:5432 (``DOCKYARD_BENCH_POSTGRES_DSN``); python-cqrs and DBOS come from
bench/requirements.txt, and a contender whose library is missing is left out with a line.
``DOCKYARD_BENCH_SAGAS`` sets the sagas per timed round (default 100).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import statistics
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench._harness import Contender, run_async
from bench._saga_timers import print_timers, timers
from bench._wire import WireCounter
from dockyard import App, module
from dockyard.sagas import Saga, Sagas, SagaSettings, SagasModule, SagaStep, step
from dockyard.sql import Database, SqlModule, SqlSagaBackend, SqlUnitOfWork

DSN = os.environ.get("DOCKYARD_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SAGAS = int(os.environ.get("DOCKYARD_BENCH_SAGAS", "100"))
IN_FLIGHT = 50
ROUNDS = 5
COUNTED = 50
"""Sagas run one at a time through the wire counter, after a warm-up of 20."""
POOL = 10
"""Connections per contender (the server is shared: every contender is open at once)."""

OneSaga = Callable[[str], Awaitable[None]]
Setup = Callable[[str, str], contextlib.AbstractAsyncContextManager[OneSaga]]
"""``setup(dsn, schema)`` yields ``run(saga_id)``, which runs one saga to completion."""

_ids = itertools.count()


def _next_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}-{uuid.uuid4().hex[:8]}"


def _url(dsn: str, driver: str) -> str:
    return dsn.replace("postgresql://", f"postgresql+{driver}://", 1)


# -- dockyard ----------------------------------------------------------------------------------


@dataclass
class Order:
    order_id: str


class Trivial(SagaStep[Order]):
    async def act(self, state: Order) -> None:
        pass

    async def compensate(self, state: Order) -> None:
        pass


class Last(SagaStep[Order]):
    """Trivial too; it tells the bench when its checkpoint has committed."""

    done: dict[str, asyncio.Future[None]] = {}  # noqa: RUF012 - one per process

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow  # sends nothing: after_commit only

    async def act(self, state: Order) -> None:
        future = self.done.get(state.order_id)
        if future is not None:
            self._uow.after_commit(lambda: future.done() or future.set_result(None))


ORDER = Saga(
    "order",
    version=1,
    state=Order,
    steps=[step("reserve", Trivial), step("charge", Trivial), step("ship", Last)],
)


@contextlib.asynccontextmanager
async def dockyard_saga(dsn: str, schema: str) -> AsyncIterator[OneSaga]:
    done, order = Last.done, ORDER
    options: dict[str, Any] = {
        "pool_size": POOL,
        "max_overflow": 0,
        "connect_args": {"server_settings": {"search_path": schema}},
    }
    database = Database(_url(dsn, "asyncpg"), **options)
    await database.create_tables()
    await database.dispose()
    sql = SqlModule.register(_url(dsn, "asyncpg"), **options)
    sagas = SagasModule.register(
        sagas=[order],
        backend=SqlSagaBackend(),
        imports=[sql],
        settings=SagaSettings(concurrency=IN_FLIGHT + 14),
    )

    @module(imports=[sql, sagas])
    class Shop: ...

    app = App.build(Shop)
    async with app:
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        while not app.health().services:  # noqa: ASYNC110 - the runner is up
            await asyncio.sleep(0.01)

        async def run(saga_id: str) -> None:
            future = done[saga_id] = asyncio.get_running_loop().create_future()
            try:
                async with app.scope() as scope:
                    await (await scope.get(Sagas)).start(order, Order(saga_id), saga_id=saga_id)
                await future
            finally:
                del done[saga_id]

        try:
            yield run
        finally:
            stop.set()
            await worker


# -- python-cqrs -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def python_cqrs_saga(dsn: str, schema: str) -> AsyncIterator[OneSaga]:
    from cqrs.handlers.saga import SagaStepHandler, SagaStepResult
    from cqrs.saga.models import SagaContext
    from cqrs.saga.saga import Saga
    from cqrs.saga.storage.sqlalchemy import Base, SqlAlchemySagaStorage
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    @dataclass
    class OrderContext(SagaContext):
        order_id: str

    class Trivial(SagaStepHandler[OrderContext, None]):
        async def act(self, context: OrderContext) -> SagaStepResult[OrderContext, None]:
            return self._generate_step_result(None)

        async def compensate(self, context: OrderContext) -> None:
            pass

    class Reserve(Trivial): ...

    class Charge(Trivial): ...

    class Ship(Trivial): ...

    class OrderSaga(Saga[OrderContext]):
        steps = [Reserve, Charge, Ship]  # noqa: RUF012 - python-cqrs's API

    class Container:
        external_container = None

        def attach_external_container(self, container: object) -> None:
            pass

        async def resolve(self, type_: type[Any]) -> Any:
            return type_()

    engine = create_async_engine(
        _url(dsn, "asyncpg"),
        pool_size=POOL,
        max_overflow=0,
        connect_args={"server_settings": {"search_path": schema}},
    )
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    storage = SqlAlchemySagaStorage(async_sessionmaker(engine, expire_on_commit=False))
    saga, container = OrderSaga(), Container()
    # A python-cqrs saga holds a session (a connection) for its whole run and opens a second
    # one while it runs (`load_saga_state` outside the run): 50 at once on a pool of 10 can all
    # hold one and wait for a second (a pool timeout after 30 s, seen here). At most
    # POOL - 1 run at once: about what the pool lets progress anyway.
    gate = asyncio.Semaphore(POOL - 1)

    async def run(saga_id: str) -> None:
        context = OrderContext(order_id=saga_id)
        async with (
            gate,
            saga.transaction(
                context=context, container=container, storage=storage, saga_id=uuid.uuid4()
            ) as transaction,
        ):
            async for _ in transaction:
                pass

    try:
        yield run
    finally:
        await engine.dispose()


# -- DBOS --------------------------------------------------------------------------------------


_dbos_workflow: Callable[[str], Awaitable[str]] | None = None


def _dbos_functions() -> Callable[[str], Awaitable[str]]:
    """Registered once per process: DBOS keeps its registry across ``destroy``/``launch``."""
    global _dbos_workflow  # noqa: PLW0603 - once per process
    if _dbos_workflow is None:
        from dbos import DBOS

        @DBOS.step()
        async def reserve(order_id: str) -> str:
            return order_id

        @DBOS.step()
        async def charge(order_id: str) -> str:
            return order_id

        @DBOS.step()
        async def ship(order_id: str) -> str:
            return order_id

        @DBOS.workflow()
        async def order_workflow(order_id: str) -> str:
            await reserve(order_id)
            await charge(order_id)
            return await ship(order_id)

        _dbos_workflow = order_workflow
    return _dbos_workflow


@contextlib.asynccontextmanager
async def dbos_saga(dsn: str, schema: str) -> AsyncIterator[OneSaga]:
    from dbos import DBOS, SetWorkflowID

    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(
        config={
            "name": "dockyard-bench",
            "system_database_url": _url(dsn, "psycopg"),
            "dbos_system_schema": schema,
            "sys_db_pool_size": POOL,
            "application_version": "bench",
            "log_level": "WARNING",
        }
    )
    workflow = _dbos_functions()
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(1) as own:  # not the loop's: DBOS shuts that one down on destroy
        await loop.run_in_executor(own, DBOS.launch)  # (the wire counter runs in this loop)

    async def run(saga_id: str) -> None:
        with SetWorkflowID(saga_id):
            await workflow(saga_id)

    try:
        yield run
    finally:
        with ThreadPoolExecutor(1) as own:
            await loop.run_in_executor(own, lambda: DBOS.destroy(destroy_registry=False))
        # DBOS shut down the executor it had made the loop's default: give it a new one
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())


# -- the floor ---------------------------------------------------------------------------------

_FLOOR_TABLE = """CREATE TABLE floor_sagas (
    saga_id text PRIMARY KEY, step int NOT NULL, status text NOT NULL, state bytea NOT NULL,
    version bigint NOT NULL, owner text, lease_until timestamptz, due_at timestamptz NOT NULL
)"""
_FLOOR_INSERT = (
    "INSERT INTO floor_sagas (saga_id, step, status, state, version, due_at) "
    "VALUES ($1, 0, 'running', $2, 1, now())"
)
_FLOOR_CLAIM = (
    "UPDATE floor_sagas SET owner = $2, lease_until = now() + interval '10 seconds', "
    "version = version + 1 WHERE saga_id = $1 AND status = 'running' "
    "AND (owner IS NULL OR lease_until < now()) RETURNING version"
)
_FLOOR_CHECKPOINT = (
    "UPDATE floor_sagas SET step = $4, status = $5, state = $6, version = version + 1, "
    "lease_until = now() + interval '10 seconds' "
    "WHERE saga_id = $1 AND version = $2 AND owner = $3"
)


async def _keep(connection: asyncpg.Connection) -> None:
    pass


@contextlib.asynccontextmanager
async def floor_saga(dsn: str, schema: str) -> AsyncIterator[OneSaga]:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=POOL,
        max_size=POOL,
        server_settings={"search_path": schema},
        reset=_keep,  # autocommit statements only: nothing to reset (asyncpg's costs a trip)
    )
    assert pool is not None
    await pool.execute(_FLOOR_TABLE)
    owner = f"floor-{uuid.uuid4().hex[:8]}"

    async def run(saga_id: str) -> None:
        async with pool.acquire() as connection:
            await connection.execute(_FLOOR_INSERT, saga_id, b"{}")
            version = await connection.fetchval(_FLOOR_CLAIM, saga_id, owner)
            for step in (1, 2, 3):  # trivial steps, then their checkpoint
                status = "completed" if step == 3 else "running"
                result = await connection.execute(
                    _FLOOR_CHECKPOINT, saga_id, version, owner, step, status, b"{}"
                )
                assert result == "UPDATE 1", result
                version += 1

    try:
        yield run
    finally:
        await pool.close()


# -- the run -----------------------------------------------------------------------------------

CONTENDERS: dict[str, tuple[Setup, str]] = {
    "dockyard": (dockyard_saga, "dockyard"),
    "python-cqrs 5.3": (python_cqrs_saga, "cqrs"),
    "DBOS 3.4": (dbos_saga, "dbos"),
    "floor (asyncpg)": (floor_saga, "asyncpg"),
}


def _available() -> dict[str, Setup]:
    found: dict[str, Setup] = {}
    for name, (setup, package) in CONTENDERS.items():
        try:
            __import__(package)
        except ImportError:
            print(f"{name}: not installed (bench/requirements.txt); left out")
            continue
        found[name] = setup
    return found


@contextlib.asynccontextmanager
async def schema_of(admin: asyncpg.Connection, contender: str) -> AsyncIterator[str]:
    """A schema of its own, dropped after."""
    tag = "".join(c for c in contender.lower() if c.isalnum())[:12]
    schema = f"dockyard_bench_sagas_{tag}_{uuid.uuid4().hex[:6]}"
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")


LATENCIES: dict[str, list[float]] = {}
"""Seconds each saga took, start to completed, in the timed sequential rounds."""


async def _sequential(
    run: OneSaga, prefix: str, n: int, latencies: list[float] | None = None
) -> None:
    for _ in range(n):
        started = time.perf_counter()
        await run(_next_id(prefix))
        if latencies is not None:
            latencies.append(time.perf_counter() - started)


async def _in_flight(run: OneSaga, prefix: str, n: int) -> None:
    left = iter(range(n))

    async def lane() -> None:
        for _ in left:
            await run(_next_id(prefix))

    await asyncio.gather(*(lane() for _ in range(min(IN_FLIGHT, n))))


@dataclass(frozen=True, slots=True)
class Wire:
    """What one saga costs on the wire, averaged over ``COUNTED`` sagas run one at a time."""

    round_trips: float
    write_transactions: float
    notifies: float
    notify_triggers: int
    """Triggers in the contender's schema whose function calls ``pg_notify`` or ``NOTIFY``
    (a ``NOTIFY`` a trigger sends is not on the wire)."""


_NOTIFY_TRIGGERS = """SELECT count(*) FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_proc p ON p.oid = t.tgfoid
    WHERE n.nspname = $1 AND NOT t.tgisinternal AND p.prosrc ~* '(pg_notify|notify )'"""


async def round_trips(setups: dict[str, Setup], admin: asyncpg.Connection) -> dict[str, Wire]:
    """What a saga of each contender costs on the wire, one contender at a time."""
    counted: dict[str, Wire] = {}
    parts = urllib.parse.urlsplit(DSN)
    for name, setup in setups.items():
        async with (
            WireCounter(parts.hostname or "127.0.0.1", parts.port or 5432) as wire,
            schema_of(admin, name) as schema,
        ):
            proxied = DSN.replace(parts.netloc, f"{parts.username}@127.0.0.1:{wire.listen_port}")
            async with setup(proxied, schema) as run:
                await _sequential(run, "warm", 20)
                await asyncio.sleep(0.3)  # background work of the warm-up settles
                wire.reset()
                await _sequential(run, "count", COUNTED)
                counted[name] = Wire(
                    wire.round_trips / COUNTED,
                    wire.write_transactions / COUNTED,
                    wire.notifies / COUNTED,
                    await admin.fetchval(_NOTIFY_TRIGGERS, schema),
                )
    return counted


async def main() -> None:
    try:
        admin = await asyncpg.connect(DSN)
    except OSError as exc:
        print(f"\n## sagas: PostgreSQL not reachable at {DSN} ({exc}); skipped")
        return
    try:
        setups = _available()
        trips = await round_trips(setups, admin)
        async with contextlib.AsyncExitStack() as stack:
            runs: dict[str, OneSaga] = {}
            for name, setup in setups.items():
                schema = await stack.enter_async_context(schema_of(admin, name))
                runs[name] = await stack.enter_async_context(setup(DSN, schema))
            sequential = await run_async(
                [Contender(n, _timed(r, n)) for n, r in runs.items()],
                n=SAGAS,
                rounds=ROUNDS,
            )
            concurrent = await run_async(
                [Contender(n, _bound(_in_flight, r, n)) for n, r in runs.items()],
                n=SAGAS * 2,
                rounds=ROUNDS,
            )
        drained = await timers(_url(DSN, "asyncpg"), DSN, lambda name: schema_of(admin, name))
    finally:
        await admin.close()
    seq = {r.name: 1e6 / r.per_op_us for r in sequential}
    par = {r.name: 1e6 / r.per_op_us for r in concurrent}
    p50 = {name: statistics.median(found) * 1e3 for name, found in LATENCIES.items() if found}
    _print(seq, par, trips, p50)
    print_timers(drained)


def _timed(run: OneSaga, name: str) -> Callable[[int], Awaitable[None]]:
    prefix = "".join(c for c in name.lower() if c.isalnum())[:8]
    latencies = LATENCIES.setdefault(name, [])
    return lambda n: _sequential(run, prefix, n, latencies if n == SAGAS else None)


def _bound(
    how: Callable[[OneSaga, str, int], Awaitable[None]], run: OneSaga, name: str
) -> Callable[[int], Awaitable[None]]:
    prefix = "".join(c for c in name.lower() if c.isalnum())[:8]
    return lambda n: how(run, prefix, n)


def _print(
    seq: dict[str, float], par: dict[str, float], trips: dict[str, Wire], p50: dict[str, float]
) -> None:
    print("\n## sagas: a 3-step saga with trivial steps, persisted in PostgreSQL")
    print(
        "target: sequential ≥ 5× python-cqrs and ≥ 6× DBOS; 50 in flight ≥ 8× python-cqrs; "
        "p50 latency ≤ 1.5× the floor's; ≤ 6 round trips and ≤ 4 write transactions per saga; "
        "no NOTIFY per step"
    )
    print(
        f"{'contender':<16} {'sagas/s':>8} {f'{IN_FLIGHT} in flight':>13} {'p50':>9} "
        f"{'round trips':>12} {'write tx':>9} {'NOTIFY':>7} {'triggers':>9}"
    )
    for name, rate in seq.items():
        wire = trips.get(name, Wire(0, 0, 0, 0))
        print(
            f"{name:<16} {rate:>8.0f} {par[name]:>13.0f} {p50.get(name, 0):>6.1f} ms "
            f"{wire.round_trips:>12.1f} {wire.write_transactions:>9.1f} {wire.notifies:>7.1f} "
            f"{wire.notify_triggers:>9}"
        )
    ours = "dockyard"
    if ours in seq:
        _print_targets(ours, seq, par, trips, p50)
    print(
        f"({SAGAS} sagas per sequential round, {SAGAS * 2} per concurrent round, median of "
        f"{ROUNDS} interleaved rounds; per saga, over {COUNTED} sagas one at a time after a "
        "warm-up: round trips = Sync + Query messages, write tx = transactions that wrote "
        "(autocommit statements included), NOTIFY = statements that notify; triggers = "
        "NOTIFY triggers in the schema)"
    )


def _print_targets(
    ours: str,
    seq: dict[str, float],
    par: dict[str, float],
    trips: dict[str, Wire],
    p50: dict[str, float],
) -> None:
    def line(what: str, value: float, target: float, *, at_most: bool = False) -> None:
        met = value <= target if at_most else value >= target
        sign = "≤" if at_most else "≥"
        print(
            f"  {what:<44} {value:>7.2f}  target {sign} {target:g}  {'met' if met else 'NOT met'}"
        )

    print("dockyard against the targets:")
    for name, (how, target) in {"python-cqrs 5.3": ("×", 5.0), "DBOS 3.4": ("×", 6.0)}.items():
        if name in seq:
            line(f"sequential {how} {name}", seq[ours] / seq[name], target)
    if "python-cqrs 5.3" in par:
        line(f"{IN_FLIGHT} in flight × python-cqrs 5.3", par[ours] / par["python-cqrs 5.3"], 8.0)
    floor = "floor (asyncpg)"
    if floor in p50 and ours in p50:
        line("p50 latency × the floor's", p50[ours] / p50[floor], 1.5, at_most=True)
    if ours in trips:
        wire = trips[ours]
        line("round trips per saga", wire.round_trips, 6, at_most=True)
        line("write transactions per saga", wire.write_transactions, 4, at_most=True)
        line("NOTIFY per saga (+ NOTIFY triggers)", wire.notifies + wire.notify_triggers, 0,
             at_most=True)  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
