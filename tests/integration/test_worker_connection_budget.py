"""The connection budget of a worker (docs/operations.md), against a real PostgreSQL.

The worker (``integration._apps.budget_worker``: a projection, the outbox relay and a consumer
with four deliveries at a time) logs in as a role of the test's own, created for the test and
dropped after it. ``CONNECTION LIMIT`` on that role makes PostgreSQL refuse the worker as a
full server would ("too many clients"), without taking a single slot from anyone else on the
shared server; ``pg_stat_activity`` rows of that role are the worker's connections.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from dockyard.sql import Database
from faults import FaultProxy
from integration import test_worker_outages
from integration._apps.services import POSTGRES_DSN, POSTGRES_URL
from integration._apps.worker_process import WorkerProcess, wait_until, worker_env
from integration.test_worker_outages import (  # the same app, schema, producer and checks
    ARGS,
    SERVICES,
    Setup,
    check_log,
    stop_cleanly,
)

setup = test_worker_outages.setup
"""The fixture: a schema, a destination, a producer app and a database connection."""

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.slow]

APP = "integration._apps.budget_worker:app"
POOL_SIZE, MAX_OVERFLOW = 3, 2
BUDGET = POOL_SIZE + MAX_OVERFLOW
"""The documented bound: one worker process opens at most ``pool_size + max_overflow``."""
DEFAULT_POOL = {"pool_size": "5", "max_overflow": "10"}  # SQLAlchemy's: room for every service
CHANNELS = ("dockyard_events", "dockyard_outbox")
TOO_MANY = "too many connections for role"
"""What PostgreSQL says when a role is at its limit (a full server says "too many clients")."""


@pytest_asyncio.fixture
async def role(setup: Setup) -> AsyncIterator[str]:
    """A login role with no connection allowed (yet) and the rights the worker needs."""
    name = f"dockyard_budget_{uuid.uuid4().hex[:10]}"
    db, schema = setup.db, setup.schema
    await db.execute(f"CREATE ROLE {name} LOGIN CONNECTION LIMIT 0")
    try:
        for grant in (
            f'GRANT USAGE ON SCHEMA "{schema}" TO {name}',
            f'GRANT ALL ON ALL TABLES IN SCHEMA "{schema}" TO {name}',
            f'GRANT ALL ON ALL SEQUENCES IN SCHEMA "{schema}" TO {name}',
            f'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA "{schema}" TO {name}',
        ):
            await db.execute(grant)
        yield name
    finally:
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name
        )
        await db.execute(f"DROP OWNED BY {name}")  # its grants
        await db.execute(f"DROP ROLE {name}")


def start_worker(setup: Setup, role: str, **env: str) -> WorkerProcess:
    values = {
        "schema": setup.schema,
        "destination": setup.destination,
        "application": setup.application,
        "broker": "rabbit",
        "broker_port": "5672",
        "role": role,
        **env,
    }
    return WorkerProcess(APP, worker_env(**values), *ARGS)


async def connections(db: asyncpg.Connection, role: str) -> int:
    return int(await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role))


async def test_no_connection_left_is_an_outage_named_after_the_budget(
    setup: Setup,
    role: str,
) -> None:
    await setup.produce(0, 20)  # written before the worker can connect at all
    # The proxy only counts the worker's attempts to connect (each is refused by PostgreSQL).
    async with FaultProxy(5432) as postgres:
        worker = start_worker(setup, role, pg_port=str(postgres.port), **DEFAULT_POOL)
        try:
            await worker.wait_states(
                lambda s: all(s[name] == "degraded" for name in SERVICES),
                "the relay and the projection degraded",
            )
            tried = postgres.opened
            await wait_until(lambda: postgres.opened >= tried + 10, "ten more attempts")
            assert worker.alive, worker.output()
            status, body = await worker.probe("/readyz")
            assert (status, body["live"]) == (503, True)
            for name in SERVICES:
                reason = body["services"][name]["reason"]
                assert "too many clients" in reason, reason
                assert TOO_MANY in reason, reason
                assert "`pool_size + max_overflow`" in reason, reason
            assert await connections(setup.db, role) == 0
            assert await setup.applied() == 0

            # Room for the budget (15), and for backends of closed connections on their way out.
            await setup.db.execute(f"ALTER ROLE {role} CONNECTION LIMIT 20")
            await setup.settled(20)
            await worker.ready()
            await setup.produce(20, 30)
            await setup.settled(30)
            await setup.check_once(30)
            for channel in CHANNELS:  # reopened after a backoff of their own (up to 5 s)
                await wait_until(
                    functools.partial(listening_again, worker, channel), f"LISTEN {channel}"
                )
            await stop_cleanly(worker)
        finally:
            worker.kill()
    check_log(worker, {"applied": 1, "outbox-relay": 1})  # one warning, one info line each
    for name in SERVICES:
        (warning,) = worker.log(rf"WARNING .*: {name}: degraded")
        assert "too many clients" in warning, warning
        assert "`pool_size + max_overflow` connections per database" in warning, warning
    for channel in CHANNELS:  # the LISTEN connections: the same, if they noticed
        went = worker.log(rf"WARNING .*LISTEN {channel} .*: degraded")
        assert len(went) <= 1, worker.output()
        assert all(TOO_MANY in line for line in went), went


def listening_again(worker: WorkerProcess, channel: str) -> bool:
    """As many "recovered" lines as "degraded" ones for the ``LISTEN channel`` connection."""
    went = worker.log(rf"WARNING .*LISTEN {channel} .*: degraded")
    return len(worker.log(rf"INFO .*LISTEN {channel} .*: recovered")) == len(went)


async def test_a_worker_stays_within_pool_size_plus_max_overflow(
    setup: Setup,
    role: str,
) -> None:
    # Room on the server for more than the budget: what holds the worker is its pool. Its
    # services at full speed want more (8 at once here: two LISTEN, four deliveries, the
    # relay, the projection), so the bound is reached.
    await setup.db.execute(f"ALTER ROLE {role} CONNECTION LIMIT {2 * BUDGET}")
    pool = {"pool_size": str(POOL_SIZE), "max_overflow": str(MAX_OVERFLOW)}
    worker = start_worker(setup, role, **pool)
    most = 0
    watching = asyncio.Event()

    async def watch() -> None:
        nonlocal most
        db = await asyncpg.connect(POSTGRES_DSN)
        try:
            while not watching.is_set():  # a query at a time, no pause: one connection's worth
                most = max(most, await connections(db, role))
        finally:
            await db.close()

    watcher = asyncio.create_task(watch())
    try:
        await worker.ready()
        for start in range(0, 200, 50):  # bursts: every service busy at once
            await setup.produce(start, start + 50)
        await setup.settled(200)
        await setup.check_once(200)
        await stop_cleanly(worker)
    finally:
        watching.set()
        await asyncio.wait_for(watcher, 30)
        worker.kill()
    assert most <= BUDGET, f"{most} connections, the budget is {BUDGET}"
    assert most >= 3, most  # it did watch: two LISTEN connections and some work at least
    refused = worker.log(TOO_MANY)
    assert refused == [], "\n".join(refused)


async def test_a_unit_of_work_beyond_the_pool_waits_for_the_next_free_connection() -> None:
    """Database keeps connections idle between units of work, but gives them back to the pool
    while it is exhausted: a checkout waiting there gets the next one (it used to wait
    pool_timeout, 30 s by default, and fail)."""
    database = Database(POSTGRES_URL, pool_size=2, max_overflow=0, pool_timeout=5)

    async def work() -> None:
        async with database.unit_of_work() as uow:
            await uow.connection.exec_driver_sql("SELECT pg_sleep(0.2)")

    try:  # two at a time, the third waits its turn: 0.2 s, not the 5 s timeout
        await asyncio.gather(work(), work(), work())
    finally:
        await database.dispose()
