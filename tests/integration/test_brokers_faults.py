"""Faults against the real brokers: cut connections, killed consumers. Nothing is lost, and
every message has its effect once (the inbox commits with the effect).

* RabbitMQ drops the relay's and the consumer's connections mid-stream (``rabbitmqctl
  close_connection``, only this test's named connections): both reconnect by themselves.
* A consumer process is ``kill -9``-ed in the middle of a handler: the broker gives the
  message to another consumer process, whose handler's effect is the only one committed.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from dockyard.app import App
from dockyard.modules import module
from dockyard.outbox import DeadLetters, OutboxMessage, OutboxModule, RelaySettings, route
from dockyard.retry import RetryPolicy
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport import Transport
from faults import FaultProxy
from integration._apps.fault_consumer import (
    BROKER_PORTS,
    CONCURRENCY,
    CONSUMER,
    EFFECTS_TABLE,
    MARKER,
    STALL_ON,
    Ping,
    consumer_app,
    group_for,
    transport_for,
)
from integration._apps.services import (
    POSTGRES_DSN,
    POSTGRES_URL,
    PYTHON,
    ROOT,
    close_rabbit_connections,
    create_schema,
    delete_declared,
    delete_rabbit_destinations,
    drop_schema,
    engine_options,
    python_env,
    unique,
)

# Waits give up after PATIENCE each; several in one test can outlast the per-test timeout.
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

MESSAGES = 400
KEYS = 8


@pytest_asyncio.fixture
async def schema() -> AsyncIterator[str]:
    name = unique("dockyard_faults").replace("-", "_")
    await create_schema(name, EFFECTS_TABLE)
    try:
        yield name
    finally:
        await drop_schema(name)


async def effects(connection: asyncpg.Connection) -> dict[int, int]:
    rows = await connection.fetch("SELECT n, count(*) AS times FROM fault_effects GROUP BY n")
    return {row["n"]: row["times"] for row in rows}


PATIENCE = 120.0
"""How long a wait gives up after: a guard against a hang, not a measure. Starting a consumer
process or catching up takes seconds on a quiet machine and far longer under
`make test-stress`; no check here depends on how long it took."""


async def wait_until(
    check: Callable[[], Awaitable[bool]], deadline: float, what: str, interval: float = 0.05
) -> None:
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if await check():
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {deadline:.0f}s waiting for {what}")


def producer(schema: str, transport: Transport, destination: str) -> App:
    retry = RetryPolicy(max_attempts=1_000, initial_delay=0.05, max_delay=0.5)

    @module(
        imports=[
            SqlModule.register(POSTGRES_URL, **engine_options(schema)),
            OutboxModule.register(
                transport=transport,
                backend=SqlOutboxBackend(),
                routes=[route(Ping).to(destination, partition_key=lambda p: f"k{p.n % KEYS}")],
                relay=RelaySettings(batch_size=50, retry=retry),
            ),
        ]
    )
    class Producer: ...

    return App.build(Producer)


@pytest.mark.rabbit
async def test_rabbit_connections_dropped_mid_stream_lose_nothing(schema: str) -> None:
    destination, name = unique("faults"), unique("dockyard-faults")
    producing, consuming = (
        transport_for("rabbit", f"{name}-relay"),
        transport_for("rabbit", f"{name}-consumer"),
    )

    async def close_connections(_: int) -> int:
        return await asyncio.to_thread(close_rabbit_connections, name)

    try:
        cuts, counted, dead = await _faults_mid_stream(
            schema, producing, consuming, destination, close_connections
        )
    finally:
        await delete_rabbit_destinations((destination, f"{destination}.{group_for(destination)}"))
    assert all(cut >= 2 for cut in cuts), f"expected the relay's and consumer's: {cuts}"
    assert sorted(counted) == list(range(MESSAGES)), "messages were lost"
    assert set(counted.values()) == {1}, "an effect happened twice"
    assert dead == []


OUTAGE = 3.0
"""How long a stall or a refusal lasts: the fault itself (several of the relay's retries and
the consumer's reads fail meanwhile), not a wait for anything to happen."""


@pytest.mark.parametrize(
    "broker",
    [pytest.param("nats", marks=pytest.mark.nats), pytest.param("redis", marks=pytest.mark.redis)],
)
async def test_connections_cut_stalled_and_refused_mid_stream_lose_nothing(
    broker: str, schema: str
) -> None:
    # The relay and the consumer reach the broker through the test's proxy: round one cuts
    # every connection, round two holds every byte for a while, round three refuses
    # connections for a while. Nothing is lost, nothing is dead-lettered, effects happen once.
    destination = unique("faults")
    async with FaultProxy(BROKER_PORTS[broker]) as proxy:
        producing, consuming = (
            transport_for(broker, "relay", port=proxy.port),
            transport_for(broker, "consumer", port=proxy.port),
        )

        async def fault(round_number: int) -> int:
            connections = proxy.open
            if round_number == 0:
                await proxy.cut()
                return connections
            if round_number == 1:
                proxy.stall()
            else:
                await proxy.refuse()
            await asyncio.sleep(OUTAGE)  # the outage itself
            await proxy.restore()
            return connections

        try:
            faults, counted, dead = await _faults_mid_stream(
                schema, producing, consuming, destination, fault
            )
        finally:
            await delete_declared(consuming)
    assert all(connections >= 2 for connections in faults), faults  # the relay's and consumer's
    assert sorted(counted) == list(range(MESSAGES)), "messages were lost"
    assert set(counted.values()) == {1}, "an effect happened twice"
    assert dead == []


async def _faults_mid_stream(
    schema: str,
    producing: Transport,
    consuming: Transport,
    destination: str,
    fault: Callable[[int], Awaitable[int]],
) -> tuple[list[int], dict[int, int], list[OutboxMessage]]:
    """Relay ``MESSAGES`` pings and consume them (in this process), calling ``fault(round)``
    in three rounds while messages flow: what each ``fault`` returned, the effects counted
    per ping, and the relay's dead letters."""
    await consuming.declare(destination, group_for(destination))  # so nothing published is refused
    shop, billing = (
        producer(schema, producing, destination),
        consumer_app(schema, consuming, destination),
    )
    stop = asyncio.Event()
    connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": schema})
    faults: list[int] = []
    try:
        async with shop, billing:
            workers = [
                asyncio.create_task(shop.run_worker(stop=stop)),
                asyncio.create_task(billing.run_worker(stop=stop)),
            ]
            written = 0

            async def write(until: int) -> None:
                nonlocal written
                while written < until:
                    await shop.publish(Ping(written))
                    written += 1
                    if written % 10 == 0:
                        await asyncio.sleep(0.02)

            # Three rounds: write, and once the consumer has caught up with the previous
            # round, break both connections while messages flow. The next round's messages
            # only arrive if both sides came back.
            before = 0
            for round_number, round_end in enumerate(
                (MESSAGES // 4, MESSAGES // 2, 3 * MESSAGES // 4)
            ):
                writing = asyncio.create_task(write(round_end))
                await wait_until(
                    functools.partial(_effects_over, connection, before + 10),
                    PATIENCE,
                    f"{before + 10} effects",
                )
                faults.append(await fault(round_number))
                await writing
                before = round_end
            await write(MESSAGES)
            await wait_until(
                lambda: _all_effects(connection), PATIENCE, f"all {MESSAGES} effects", interval=0.2
            )
            dead = await (await shop.get(DeadLetters)).list()
            stop.set()
            await asyncio.gather(*workers)
        counted = await effects(connection)
    finally:
        stop.set()
        await connection.close()
        await producing.close()
        await consuming.close()
    return faults, counted, dead


async def _effects_over(connection: asyncpg.Connection, count: int) -> bool:
    return bool(await connection.fetchval("SELECT count(*) FROM fault_effects") >= count)


async def _all_effects(connection: asyncpg.Connection) -> bool:
    done = await connection.fetchval("SELECT count(DISTINCT n) FROM fault_effects")
    return bool(done >= MESSAGES)


def start_consumer(
    broker: str, schema: str, destination: str, name: str, **env: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYTHON, "-m", "integration._apps.fault_consumer", broker, schema, destination, name],
        cwd=ROOT,
        env={**python_env(), CONSUMER: name, **env},
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


KILLED_MESSAGES = 20
STALLED = 7
BROKERS = [
    pytest.param("rabbit", marks=pytest.mark.rabbit),
    pytest.param("nats", marks=pytest.mark.nats),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("kafka", marks=pytest.mark.kafka),
]


@pytest.mark.parametrize("broker", BROKERS)
async def test_a_consumer_killed_mid_handler_has_its_message_redelivered_once(
    broker: str, schema: str, tmp_path: Path
) -> None:
    destination, name = unique("killed"), unique("dockyard-killed")
    marker = tmp_path / "stalled"
    producing = transport_for(broker, f"{name}-relay")
    await producing.declare(
        destination, group_for(destination)
    )  # the group exists before anything is sent
    shop = producer(schema, producing, destination)
    stop = asyncio.Event()
    first = start_consumer(
        broker, schema, destination, "first", **{STALL_ON: str(STALLED), MARKER: str(marker)}
    )
    second: subprocess.Popen[bytes] | None = None
    connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": schema})
    try:
        async with shop:
            relay = asyncio.create_task(shop.run_worker(stop=stop))
            for n in range(KILLED_MESSAGES):
                await shop.publish(Ping(n))

            async def stalled() -> bool:
                return marker.exists()

            await wait_until(stalled, PATIENCE, f"the first consumer to stall on Ping({STALLED})")
            # Its effect is written in the open transaction: nobody else can see it yet.
            assert (
                await connection.fetchval(
                    "SELECT count(*) FROM fault_effects WHERE n = $1", STALLED
                )
                == 0
            )
            second = start_consumer(broker, schema, destination, "second")
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            await wait_until(
                lambda: _effects_count(connection, KILLED_MESSAGES), PATIENCE, "every effect"
            )
            stop.set()
            await relay
        rows = await connection.fetch("SELECT n, consumer FROM fault_effects")
    finally:
        stop.set()
        for process in (first, second):
            if process is not None:
                stop_process(process)
        await connection.close()
        await producing.close()
        await delete_declared(producing)
    assert sorted(row["n"] for row in rows) == list(range(KILLED_MESSAGES))
    assert [row["consumer"] for row in rows if row["n"] == STALLED] == ["second"]


async def _effects_count(connection: asyncpg.Connection, count: int) -> bool:
    return bool(await connection.fetchval("SELECT count(DISTINCT n) FROM fault_effects") >= count)


@pytest.mark.parametrize("broker", BROKERS)
async def test_a_consumer_killed_mid_handler_keeps_its_keys_order(
    broker: str, schema: str, tmp_path: Path
) -> None:
    # Three messages of one key (Ping(n) has key k{n % KEYS}); the first consumer dies inside
    # the first one's handler, a second takes over: it must apply them in publish order, the
    # killed one first (on NATS after ack_wait, 2 s here via NatsTransport(ack_wait=...); on
    # Redis once claimed, after claim_after, 2 s here too).
    destination, name = unique("ordered"), unique("dockyard-ordered")
    marker = tmp_path / "stalled"
    one_key = [0, KEYS, 2 * KEYS]
    producing = transport_for(broker, f"{name}-relay")
    await producing.declare(destination, group_for(destination))
    shop = producer(schema, producing, destination)
    stop = asyncio.Event()
    serial = {CONCURRENCY: "1"}
    first = start_consumer(
        broker, schema, destination, "first",
        **{STALL_ON: str(one_key[0]), MARKER: str(marker)}, **serial,
    )  # fmt: skip
    second: subprocess.Popen[bytes] | None = None
    connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": schema})
    try:
        async with shop:
            relay = asyncio.create_task(shop.run_worker(stop=stop))
            for n in one_key:
                await shop.publish(Ping(n))

            async def stalled() -> bool:
                return marker.exists()

            await wait_until(
                stalled, PATIENCE, f"the first consumer to stall on Ping({one_key[0]})"
            )
            second = start_consumer(broker, schema, destination, "second", **serial)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            await wait_until(
                lambda: _effects_count(connection, len(one_key)), PATIENCE, "every effect"
            )
            stop.set()
            await relay
        rows = await connection.fetch("SELECT n, consumer FROM fault_effects ORDER BY applied")
    finally:
        stop.set()
        for process in (first, second):
            if process is not None:
                stop_process(process)
        await connection.close()
        await producing.close()
        await delete_declared(producing)
    assert [(row["n"], row["consumer"]) for row in rows] == [(n, "second") for n in one_key]
