"""A real ``dockyard worker`` through NATS, Redis and Kafka outages, behind the test's own proxy.

The RabbitMQ versions are in ``test_worker_outages.py``; this file runs the same worker
(``integration._apps.outage_worker``: a projection, the outbox relay, a consumer) on the
other brokers. Each test checks that the worker still runs, nothing is lost, every effect
happened once and the log has one line per change of state. Kafka runs on a Tansu of the
test's own (``integration._apps.tansu``), whose metadata points clients at the proxy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from dockyard.app import App
from dockyard.modules import module
from dockyard.outbox import OutboxModule, route
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport.memory import InMemoryTransport
from dockyard.transport.nats import NatsTransport
from integration._apps import kafka_outage_worker, redis_outage_worker
from integration._apps.outage_worker import GROUP, TABLES, Ping, Ticked
from integration._apps.services import (
    POSTGRES_DSN,
    POSTGRES_URL,
    create_schema,
    delete_nats_streams,
    drop_schema,
    engine_options,
    unique,
)
from integration._apps.tansu import proxy_for
from integration._apps.worker_process import WorkerProcess, wait_until, worker_env
from integration.test_worker_outages import ARGS, OUTAGE, Setup, check_log, stop_cleanly

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PORTS = {"nats": 4222, "redis": 6379}
APPS = {
    "nats": "integration._apps.outage_worker:app",
    "redis": "integration._apps.redis_outage_worker:app",
    "kafka": "integration._apps.kafka_outage_worker:app",
}


def broker_of(setup: Setup) -> str:
    return next(broker for broker in APPS if setup.schema.startswith(f"dockyard_{broker}"))


@pytest_asyncio.fixture
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    """The test's schema and destination, and a producer writing straight into them."""
    broker: str = request.param
    schema = unique(f"dockyard_{broker}_outage").replace("-", "_")
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
            yield Setup(schema, destination, unique(f"dockyard-{broker}-outage"), producer, db)
    finally:
        await db.close()
        await drop_schema(schema)
        if broker == "nats":
            await delete_nats_streams(NatsTransport.stream_name(destination))
        elif broker == "redis":
            await _delete_redis_stream(destination)
        # Kafka: the test's own Tansu, gone with its topics


async def _delete_redis_stream(name: str) -> None:
    from redis.asyncio import Redis

    client = Redis(host="127.0.0.1", port=PORTS["redis"])
    try:
        await client.delete(name)
    finally:
        await client.aclose()


def start_worker(setup: Setup, broker: str, port: int) -> WorkerProcess:
    values = {
        "schema": setup.schema,
        "destination": setup.destination,
        "application": setup.application,
        "broker": broker,
        "broker_port": str(port),
    }
    return WorkerProcess(APPS[broker], worker_env(**values), *ARGS)


async def declare_group(setup: Setup, broker: str, port: int) -> None:
    """Declare the worker's consumer group on ``broker`` (reached on ``port``)."""
    worker_app = kafka_outage_worker if broker == "kafka" else redis_outage_worker
    transport = worker_app.transport(broker, port)
    try:
        await transport.declare(setup.destination, GROUP)
    finally:
        await transport.close()


async def _effects_at_least(setup: Setup, count: int) -> bool:
    return len(await setup.effects()) >= count


BROKERS = [
    pytest.param("nats", marks=pytest.mark.nats),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("kafka", marks=pytest.mark.kafka),
]


@pytest.mark.parametrize("setup", BROKERS, indirect=True)
async def test_broker_unreachable_at_start_is_waited_out(setup: Setup) -> None:
    broker = broker_of(setup)
    consumer = f"consumer:{setup.destination}:outage"
    async with proxy_for(broker, PORTS.get(broker, 0)) as proxy:
        # As docs/brokers.md asks of a deployment: the group exists before anything publishes.
        # Without it, once the broker answers, the worker's relay and its consumer race: a
        # JetStream or Redis group declared after the relay's publish starts after it (seen
        # on NATS: 10 published, 0 handled).
        await declare_group(setup, broker, proxy.port)
        await proxy.refuse()
        worker = start_worker(setup, broker, proxy.port)
        try:
            await worker.wait_states(
                lambda s: s.get(consumer) == "degraded", "the consumer degraded"
            )
            await setup.produce(0, 10)
            await asyncio.sleep(OUTAGE)  # the outage itself
            assert worker.alive, worker.output()
            assert (await worker.states())[consumer] == "degraded"

            await proxy.restore()
            await setup.settled(10, worker)
            await worker.ready()
            await setup.check_once(10)
            await stop_cleanly(worker)
        finally:
            worker.kill()
    check_log(worker, {consumer: 1, "outbox-relay": 1})


@pytest.mark.parametrize("setup", BROKERS, indirect=True)
async def test_cut_and_down_mid_stream_loses_nothing(setup: Setup) -> None:
    broker = broker_of(setup)
    async with proxy_for(broker, PORTS.get(broker, 0)) as proxy:
        worker = start_worker(setup, broker, proxy.port)
        try:
            await worker.ready()
            await setup.produce(0, 30)
            await wait_until(lambda: _effects_at_least(setup, 10), "10 effects")
            assert await proxy.cut() >= 1  # every broker connection drops mid-stream
            await setup.produce(30, 60)
            await wait_until(lambda: _effects_at_least(setup, 40), "40 effects")
            await proxy.refuse()  # and now the broker is down for a while
            await setup.produce(60, 90)
            await asyncio.sleep(OUTAGE)  # the outage itself
            assert worker.alive, worker.output()
            await proxy.restore()
            await setup.settled(90, worker)
            await setup.check_once(90)
            await stop_cleanly(worker)
        finally:
            worker.kill()
    errors = worker.log(r" (ERROR|CRITICAL) ")
    assert errors == [], "\n".join(errors)
