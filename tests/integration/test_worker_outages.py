"""Outages are states, not crashes: a real ``dockyard worker`` through the test's own proxies.

Each test runs ``integration._apps.outage_worker`` (a projection, the outbox relay and a
consumer) in a subprocess whose PostgreSQL or broker sits behind a ``FaultProxy``; the test
writes events and outbox rows straight into the database. Every test checks the same things:
the worker is still running, nothing is lost, every effect happened once, and the log has one
line per change of state (a warning when a service degrades, an info line when it recovers),
never one per attempt.
"""

from __future__ import annotations

import asyncio
import functools
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio

from dockyard.app import App
from dockyard.eventsourcing import ANY, EventStore
from dockyard.modules import module
from dockyard.outbox import OutboxModule, route
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport.memory import InMemoryTransport
from faults import FaultProxy
from integration._apps.outage_worker import TABLES, Ping, Ticked
from integration._apps.services import (
    POSTGRES_DSN,
    POSTGRES_URL,
    create_schema,
    delete_rabbit_destinations,
    drop_schema,
    engine_options,
    unique,
)
from integration._apps.worker_process import WorkerProcess, wait_until, worker_env

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.slow]

APP = "integration._apps.outage_worker:app"
OUTAGE = 4.0
"""How long each outage lasts: the fault itself, long enough for several retries (backoff
is capped at 0.5 s here), not a wait for anything to happen."""
ARGS = ("--grace", "20", "--max-backoff", "0.5")
SERVICES = ("applied", "outbox-relay")


@dataclass
class Setup:
    schema: str
    destination: str
    application: str
    producer: App
    db: asyncpg.Connection

    async def produce(self, start: int, stop: int) -> None:
        """Events ``Ticked(n)`` for the projection, messages ``Ping(n)`` for the consumer."""
        for n in range(start, stop):
            async with self.producer.scope() as scope:
                store = await scope.get(EventStore)
                await store.append(f"Tick-{n % 5}", [Ticked(n)], ANY)
            await self.producer.publish(Ping(n))

    async def applied(self) -> int:
        return int(await self.db.fetchval("SELECT count(*) FROM outage_applied"))

    async def effects(self) -> dict[int, int]:
        rows = await self.db.fetch("SELECT n, count(*) AS c FROM outage_effects GROUP BY n")
        return {row["n"]: row["c"] for row in rows}

    async def settled(self, count: int, worker: WorkerProcess | None = None) -> None:
        """Wait for ``count`` events applied and messages handled; on a timeout, say how far
        each got and, given the ``worker``, what it logged."""

        async def done() -> bool:
            return await self.applied() >= count and len(await self.effects()) >= count

        try:
            await wait_until(done, f"{count} events applied and {count} messages handled", 90)
        except AssertionError as timed_out:
            got = f"{await self.applied()} applied, {len(await self.effects())} handled"
            said = f"; the worker logged:\n{worker.output()[-4000:]}" if worker else ""
            raise AssertionError(f"{timed_out} ({got}){said}") from None

    async def check_once(self, count: int) -> None:
        """Nothing lost, every effect once."""
        assert await self.applied() == count
        rows = await self.db.fetch("SELECT n FROM outage_applied ORDER BY n")
        assert [row["n"] for row in rows] == list(range(count))
        effects = await self.effects()
        assert sorted(effects) == list(range(count)), "a message was lost"
        assert set(effects.values()) == {1}, "an effect happened twice"
        dead = await self.db.fetchval("SELECT count(*) FROM dockyard_outbox WHERE status = 'dead'")
        assert dead == 0

    async def terminate_worker_connections(self) -> int:
        """``pg_terminate_backend`` every connection of the worker (and no one else's)."""
        rows = await self.db.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            self.application,
        )
        return len(rows)


@pytest_asyncio.fixture
async def setup() -> AsyncIterator[Setup]:
    schema = unique("dockyard_outage").replace("-", "_")
    destination = unique("outage")
    await create_schema(schema, *TABLES)

    @module(
        imports=[
            SqlModule.register(
                POSTGRES_URL,
                serializer=Serializer(TypeRegistry([Ticked])),
                **engine_options(schema),
            ),
            OutboxModule.register(
                transport=InMemoryTransport(),
                backend=SqlOutboxBackend(),
                routes=[route(Ping).to(destination)],
                run_relay=False,
            ),
        ]
    )
    class Producer: ...

    db = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": schema})
    try:
        async with App.build(Producer) as producer:
            yield Setup(schema, destination, unique("dockyard-outage"), producer, db)
    finally:
        await db.close()
        await drop_schema(schema)
        await delete_rabbit_destinations((destination, f"{destination}.outage"))


def start_worker(setup: Setup, **env: str) -> WorkerProcess:
    values = {
        "schema": setup.schema,
        "destination": setup.destination,
        "application": setup.application,
        "broker": "rabbit",
        "broker_port": "5672",
        **env,
    }
    return WorkerProcess(APP, worker_env(**values), *ARGS)


def check_log(worker: WorkerProcess, degraded: dict[str, int]) -> None:
    """One warning per outage a service went through, one info line per recovery, and
    nothing else at WARNING or above from dockyard (no line per attempt)."""
    for service, times in degraded.items():
        went = worker.log(rf"WARNING .*: {service}: degraded")
        came = worker.log(rf"INFO .*: {service}: recovered after")
        assert len(went) == times, f"{service}: {went}\n{worker.output()}"
        assert len(came) == times, f"{service}: {came}\n{worker.output()}"
    # An outage longer than the lease's time to live may also cost the runner its lease: that
    # is one more change of state, said once.
    assert len(worker.log(r"lost its lease")) <= max(degraded.values(), default=0)
    noisy = [
        line
        for line in worker.log(r" (WARNING|ERROR|CRITICAL) ")
        if ": degraded, retrying with backoff" not in line and "lost its lease" not in line
    ]
    assert noisy == [], "\n".join(noisy)


async def stop_cleanly(worker: WorkerProcess) -> None:
    assert worker.alive, worker.output()
    worker.signal(signal.SIGTERM)
    assert await worker.exit_code() == 0, worker.output()
    for service in service_names(worker):  # one line each
        assert len(worker.log(rf": {service}: stopped$")) == 1, worker.output()
    # Nothing but dockyard's own lines from the signal on: a broker client left connected at
    # exit would take it for an outage and say it reconnects.
    (signalled,) = [i for i, line in enumerate(worker.lines) if "SIGTERM: stopping" in line]
    foreign = [
        line
        for line in worker.lines[signalled + 1 :]
        if not re.search(r" (DEBUG|INFO|WARNING|ERROR|CRITICAL) dockyard[.:]", line)
    ]
    assert foreign == [], "\n".join(foreign)


def service_names(worker: WorkerProcess) -> list[str]:
    (started,) = [line for line in worker.lines if line.startswith("dockyard worker: running")]
    return started.removeprefix("dockyard worker: running ").split(", ")


async def test_database_refusing_connections_is_an_outage_not_a_crash(setup: Setup) -> None:
    async with FaultProxy(5432) as postgres:
        worker = start_worker(setup, pg_port=str(postgres.port))
        try:
            await worker.ready()
            await setup.produce(0, 20)
            await setup.settled(20)

            await postgres.refuse()
            await setup.produce(20, 40)  # straight into the database, not through the proxy
            await worker.wait_states(
                lambda s: all(s[name] == "degraded" for name in SERVICES),
                "the relay and the projection degraded",
            )
            await asyncio.sleep(OUTAGE)  # the outage itself
            assert worker.alive, worker.output()
            _, body = await worker.probe("/livez")
            assert body["live"] is True
            assert "ConnectionRefusedError" in body["services"]["applied"]["reason"]
            assert (await worker.probe("/readyz"))[0] == 503

            await postgres.restore()
            await setup.settled(40)
            await worker.ready()
            await setup.check_once(40)
            await stop_cleanly(worker)
        finally:
            worker.kill()
    check_log(worker, {"applied": 1, "outbox-relay": 1})


async def test_connections_terminated_server_side_lose_nothing(setup: Setup) -> None:
    worker = start_worker(setup)
    try:
        await worker.ready()
        terminated = []
        for start in (0, 30, 60):
            await setup.produce(start, start + 30)
            await wait_until(
                functools.partial(_effects_at_least, setup, start + 10), f"{start + 10} effects"
            )
            terminated.append(await setup.terminate_worker_connections())
        await setup.settled(90)
        await worker.ready()
        await setup.check_once(90)
        await stop_cleanly(worker)
    finally:
        worker.kill()
    assert all(count >= 1 for count in terminated), terminated
    # Each service may or may not have noticed a termination, and may notice the last one
    # late: its lines alternate, one per change of state, never one per attempt; a last
    # "degraded" without its "recovered" is one the stop came before the next attempt of (a
    # relay idle after the last message uses its connection, and finds it gone, only at its
    # next poll: seen once just before the SIGTERM, after the worker was ready).
    for service in SERVICES:
        lines = worker.log(rf"{service}: (degraded|recovered)|SIGTERM: stopping")
        changes = [
            "stop" if "SIGTERM" in x else "down" if ": degraded" in x else "up" for x in lines
        ]
        running = [c for c in changes if c != "stop"]
        expected = ["down", "up"] * (len(running) // 2)
        if len(running) % 2:
            expected.append("down")
            assert "stop" in changes, f"{service}: {changes}"
        assert running == expected, f"{service}: {changes}\n{worker.output()}"
    errors = worker.log(r" (ERROR|CRITICAL) ")  # a connection lost at the stop: a warning
    assert errors == [], "\n".join(errors)


async def _effects_at_least(setup: Setup, count: int) -> bool:
    return len(await setup.effects()) >= count


async def test_broker_unreachable_at_start_is_waited_out(setup: Setup) -> None:
    consumer = f"consumer:{setup.destination}:outage"
    async with FaultProxy(5672) as rabbit:
        await rabbit.refuse()
        worker = start_worker(setup, broker_port=str(rabbit.port))
        try:
            await worker.wait_states(
                lambda s: s.get(consumer) == "degraded", "the consumer degraded"
            )
            await setup.produce(0, 10)
            await asyncio.sleep(OUTAGE)  # the outage itself
            assert worker.alive, worker.output()
            assert (await worker.states())[consumer] == "degraded"

            await rabbit.restore()
            await setup.settled(10)
            await worker.ready()
            await setup.check_once(10)
            await stop_cleanly(worker)
        finally:
            worker.kill()
    went = worker.log(rf"WARNING .*: {consumer}: degraded")
    assert len(went) == 1, worker.output()
    assert len(worker.log(rf"INFO .*: {consumer}: recovered after")) == 1, worker.output()


async def test_broker_cut_and_down_mid_stream_loses_nothing(setup: Setup) -> None:
    async with FaultProxy(5672) as rabbit:
        worker = start_worker(setup, broker_port=str(rabbit.port))
        try:
            await worker.ready()
            await setup.produce(0, 30)
            await wait_until(lambda: _effects_at_least(setup, 10), "10 effects")
            assert await rabbit.cut() >= 1  # every broker connection drops mid-stream
            await setup.produce(30, 60)
            await wait_until(lambda: _effects_at_least(setup, 40), "40 effects")
            await rabbit.refuse()  # and now the broker is down for a while
            await setup.produce(60, 90)
            await asyncio.sleep(OUTAGE)  # the outage itself
            assert worker.alive, worker.output()
            await rabbit.restore()
            await setup.settled(90)
            await setup.check_once(90)
            await stop_cleanly(worker)
        finally:
            worker.kill()


async def test_sigterm_stops_every_service_and_releases_the_lease(setup: Setup) -> None:
    worker = start_worker(setup)
    try:
        await worker.ready()
        await setup.produce(0, 10)
        await setup.settled(10)
        holder = await setup.db.fetchval(
            "SELECT owner FROM dockyard_projection_leases WHERE name = 'applied'"
        )
        assert holder is not None
        await stop_cleanly(worker)
    finally:
        worker.kill()
    # released, not left to expire: another worker takes over at once
    assert await setup.db.fetchval("SELECT count(*) FROM dockyard_projection_leases") == 0
    errors = worker.log(r" (ERROR|CRITICAL) ")
    assert errors == [], "\n".join(errors)


async def test_a_second_signal_forces_the_stop(setup: Setup) -> None:
    async with FaultProxy(5432) as postgres:
        worker = start_worker(setup, pg_port=str(postgres.port))
        try:
            await worker.ready()
            postgres.stall()  # every database call now hangs: nothing can finish
            await setup.produce(0, 5)
            worker.signal(signal.SIGTERM)
            await wait_until(lambda: bool(worker.log(r"SIGTERM: stopping")), "the first signal")
            worker.signal(signal.SIGTERM)
            # well before the 20 s grace period
            assert await worker.exit_code(within=15) == 0, worker.output()
        finally:
            worker.kill()
    assert worker.log(r"SIGTERM again: cancelling"), worker.output()
