"""Outbox relay to real brokers: throughput PostgreSQL → RabbitMQ / NATS JetStream, and
commit → remote handler latency; python-cqrs 5.3's outbox producer on RabbitMQ beside it.

* Throughput: the outbox is filled with ``N`` pending rows over ``KEYS`` partition keys
  (COPY), then one relay (or two, as two workers would run) drains it in batches of
  ``BATCH`` (claim with per-key advisory locks + ``SKIP LOCKED``, publish, mark delivered,
  commit; with ``RelaySettings.pipeline`` batches in flight, 2 by default, and 1 in the
  "pipeline 1" row: one batch after another) while a consumer in another process
  drains the group's queue (a plain aio-pika / nats-py consumer that acks every message, so
  the consumer is not what is measured; the NATS group is created with
  ``max_ack_pending=NATS_MAX_ACK_PENDING``, not dockyard's default of 1, which would hand the
  consumer one message at a time). "relay msg/s" is rows over the relay's time;
  "end to end" is rows over the time until the consumer had them all. The relay publishes a
  batch with ``publish_many`` (a wave per key depth, confirms awaited together); "one by
  one" is the same relay on the port's ``publish`` only (the way it worked before), on
  fewer rows.
* Latency: one app routes ``OrderPlaced`` through the SQL outbox on PostgreSQL to the broker;
  another app (its own transport and connection, same process) consumes it. Each event is
  published in its own scope; the time from the scope's commit to the consumer's handler is
  recorded, one message at a time.
* python-cqrs 5.3: its ``EventProducer`` over ``SqlAlchemyOutboxedEventRepository`` on the
  same PostgreSQL and its ``AMQPMessageBroker`` on the same RabbitMQ, as its docs run it:
  read a batch, ``send_message`` each, commit. Its producer awaits each publish in turn and
  declares the queue, exchange and binding on every message. It has no NATS broker (AMQP
  and Kafka only), so the NATS row has no peer. Its latency is not measured: its producer
  polls (no LISTEN/NOTIFY), so latency is whatever poll interval one picks.

Run: ``make bench ARGS=brokers``. Needs PostgreSQL, RabbitMQ and NATS on 127.0.0.1
(``DOCKYARD_BENCH_POSTGRES_DSN``, ``DOCKYARD_BENCH_RABBIT_URL``, ``DOCKYARD_BENCH_NATS_URL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import multiprocessing
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import (
    OutboxModule,
    OutboxRelay,
    OutboxStatus,
    RelaySettings,
    route,
)
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.sql import Database, SqlModule, SqlOutboxBackend, SqlOutboxStore
from dockyard.transport import Subscription, Transport, TransportMessage
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport

DSN = os.environ.get("DOCKYARD_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
URL = DSN.replace("postgresql://", "postgresql+asyncpg://")
RABBIT_URL = os.environ.get("DOCKYARD_BENCH_RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")
NATS_URL = os.environ.get("DOCKYARD_BENCH_NATS_URL", "nats://127.0.0.1:4222")
N = 20_000
KEYS = 1_000
BATCH = 500
ONE_BY_ONE_N = 2_000
CQRS_N = 2_000
ROUNDS = 2
LATENCY_MESSAGES = 300
GROUP = "bench"
NATS_MAX_ACK_PENDING = 1_000
"""The bench's NATS group may have this many messages out unacknowledged (the consumer fetches
500 at a time). dockyard's default, 1, keeps each key's order when a consumer dies
mid-handler, and hands out one message at a time: what this setting trades away."""


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    order_id: str


_arrivals: dict[str, float] = {}


class Arrived(EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        _arrivals[event.order_id] = time.perf_counter()


class OneByOne:
    """The port without ``publish_many``: the relay awaits each publish in turn."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    async def publish(self, message: TransportMessage, /) -> None:
        await self.inner.publish(message)

    async def declare(self, destination: str, group: str) -> None:
        await self.inner.declare(destination, group)

    def subscribe(
        self, destination: str, group: str, *, prefetch: int = 1
    ) -> AbstractAsyncContextManager[Subscription]:
        return self.inner.subscribe(destination, group, prefetch=prefetch)

    async def close(self) -> None:
        await self.inner.close()


# -- consumers in another process: they ack every message and report when the last came ----


async def _drain_rabbit(queue: str, n: int, ready: Any) -> float:
    import aio_pika

    connection = await aio_pika.connect(RABBIT_URL)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1_000)
        source = await channel.declare_queue(queue, passive=True)
        count = 0
        async with source.iterator() as messages:
            ready.set()
            async for message in messages:
                count += 1
                if count % 200 == 0 or count == n:
                    await message.ack(multiple=True)
                if count >= n:
                    return time.time()
    raise AssertionError("unreachable")


async def _drain_nats(subject: str, n: int, ready: Any) -> float:
    import nats

    connection = await nats.connect(NATS_URL)
    try:
        js = connection.jetstream()
        stream = NatsTransport.stream_name(subject)
        subscription = await js.pull_subscribe(subject, durable=GROUP, stream=stream)
        ready.set()
        count = 0
        while count < n:
            with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
                for message in await subscription.fetch(500, timeout=1):
                    await message.ack()
                    count += 1
        return time.time()
    finally:
        await connection.close()


def _drain(kind: str, where: str, n: int, ready: Any, done: Any) -> None:
    drain = _drain_rabbit if kind == "rabbit" else _drain_nats
    done.put(asyncio.run(drain(where, n, ready)))


@asynccontextmanager
async def _consumer(kind: str, where: str, n: int) -> AsyncIterator[Callable[[], Awaitable[float]]]:
    """A draining consumer in another process; yields how to await its last arrival."""
    context = multiprocessing.get_context("spawn")
    ready, done = context.Event(), context.Queue()
    process = context.Process(target=_drain, args=(kind, where, n, ready, done), daemon=True)
    process.start()
    loop = asyncio.get_running_loop()
    try:
        if not await loop.run_in_executor(None, ready.wait, 30):
            raise RuntimeError(f"the {kind} consumer did not start")

        async def last_arrival() -> float:
            return float(await loop.run_in_executor(None, functools.partial(done.get, timeout=120)))

        yield last_arrival
    finally:
        process.join(5)
        if process.is_alive():
            process.terminate()


# -- dockyard ---------------------------------------------------------------------------


async def _fill(raw: asyncpg.Connection, destination: str, n: int) -> None:
    now = time.time()
    records = [
        (f"{uuid.uuid4()}", destination, "OrderPlaced", 1, b'{"order_id":"o"}',
         '{"correlation-id":"c"}', f"k-{i % KEYS}", now, 0, now, "pending")
        for i in range(n)
    ]  # fmt: skip
    await raw.copy_records_to_table(
        "dockyard_outbox",
        records=records,
        columns=[
            "message_id", "destination", "type_name", "schema_version", "payload", "headers",
            "partition_key", "created_at", "attempts", "next_attempt_at", "status",
        ],
    )  # fmt: skip


async def _drain_all(store: SqlOutboxStore, relay: OutboxRelay) -> int:
    """Relay until nothing is pending (a relay's drain stops when the others hold the rest)."""
    delivered = 0
    while True:
        delivered += await relay.drain()
        if (await store.counts())[OutboxStatus.PENDING] == 0:
            return delivered
        await asyncio.sleep(0.001)


async def _forget(transport: Transport, destination: str) -> None:
    """Delete the run's queue / stream so runs leave nothing behind on the broker."""
    with contextlib.suppress(Exception):  # best effort: the figures are already taken
        if isinstance(transport, RabbitTransport):
            channel = await transport.broker._connection.channel()
            await channel.queue_delete(f"{destination}.{GROUP}", if_unused=False, if_empty=False)
            await channel.exchange_delete(destination)
            await channel.close()
        elif isinstance(transport, NatsTransport):
            js = transport.broker.connection.jetstream()
            await js.delete_stream(NatsTransport.stream_name(destination))


@dataclass(frozen=True, slots=True)
class Rates:
    relay: float
    end_to_end: float


async def relay_throughput(
    schema: str,
    kind: str,
    make: Callable[[], Transport],
    n: int,
    *,
    relays: int = 1,
    one_by_one: bool = False,
    consumer: bool = True,
    pipeline: int = RelaySettings().pipeline,
) -> Rates:
    destination = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
    transport = make()
    await transport.declare(destination, GROUP)
    database = Database(URL, connect_args={"server_settings": {"search_path": schema}})
    raw = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    where = f"{destination}.{GROUP}" if kind == "rabbit" else destination
    try:
        await raw.execute("TRUNCATE dockyard_outbox")
        await _fill(raw, destination, n)
        await raw.execute("ANALYZE dockyard_outbox")
        relaying = OneByOne(transport) if one_by_one else transport
        store = SqlOutboxStore(database)
        settings = RelaySettings(batch_size=BATCH, pipeline=pipeline)
        running = [OutboxRelay(store, relaying, settings) for _ in range(relays)]
        if not consumer:
            # The relay alone: the broker keeps the messages. On two cores a draining consumer
            # process competes with the relay, the broker and PostgreSQL for the CPU.
            started = time.perf_counter()
            delivered = sum(await asyncio.gather(*(_drain_all(store, r) for r in running)))
            elapsed = time.perf_counter() - started
            assert delivered == n, (delivered, n)
            return Rates(n / elapsed, math.nan)
        async with _consumer(kind, where, n) as last_arrival:
            started_at, started = time.time(), time.perf_counter()
            delivered = sum(await asyncio.gather(*(_drain_all(store, r) for r in running)))
            elapsed = time.perf_counter() - started
            assert delivered == n, (delivered, n)
            finished_at = await last_arrival()
        return Rates(n / elapsed, n / (finished_at - started_at))
    finally:
        await raw.close()
        await database.dispose()
        await _forget(transport, destination)
        await transport.close()


async def latency(schema: str, make: Callable[[], Transport]) -> list[float]:
    _arrivals.clear()
    destination = f"bench-latency-{uuid.uuid4().hex[:8]}"
    url_options = {"connect_args": {"server_settings": {"search_path": schema}}}
    producing, consuming = make(), make()
    await consuming.declare(destination, GROUP)

    @module(
        imports=[
            SqlModule.register(URL, **url_options),
            OutboxModule.register(
                transport=producing,
                backend=SqlOutboxBackend(),
                routes=[route(OrderPlaced).to(destination, partition_key=lambda e: e.order_id)],
            ),
        ]
    )
    class Producer: ...

    @module(
        handlers=[Arrived],
        imports=[
            OutboxModule.register(
                transport=consuming, backend=InMemoryOutboxBackend(), run_relay=False
            ),
            ConsumerModule.register(endpoints=[listen(destination, group=GROUP)]),
        ],
    )
    class Consumer: ...

    producer, consumer = App.build(Producer), App.build(Consumer)
    stop = asyncio.Event()
    try:
        async with producer, consumer:
            workers = [
                asyncio.create_task(producer.run_worker(stop=stop)),
                asyncio.create_task(consumer.run_worker(stop=stop)),
            ]
            await asyncio.sleep(0.5)  # LISTEN connection up, consumer subscribed
            committed: dict[str, float] = {}
            for i in range(LATENCY_MESSAGES):
                order_id = f"o-{i}"
                await producer.publish(OrderPlaced(order_id))  # its scope commits on return
                committed[order_id] = time.perf_counter()
                for _ in range(5000):
                    if order_id in _arrivals:
                        break
                    await asyncio.sleep(0.0002)
                await asyncio.sleep(0.001)
            stop.set()
            await asyncio.gather(*workers)
    finally:
        await _forget(consuming, destination)
        await producing.close()
        await consuming.close()
    return [(_arrivals[o] - t) * 1e3 for o, t in committed.items() if o in _arrivals]


# -- python-cqrs 5.3 ----------------------------------------------------------------------


async def cqrs_throughput(schema: str, n: int) -> Rates | str:
    try:
        import aio_pika
        import cqrs
        from cqrs.adapters.amqp import amqp_publisher_factory
        from cqrs.message_brokers.amqp import AMQPMessageBroker
        from cqrs.message_brokers.producer import EventProducer
        from cqrs.outbox.sqlalchemy import (
            OutboxModel,
            SqlAlchemyOutboxedEventRepository,
        )
        from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    except ImportError as exc:
        return f"not installed ({exc.name}); run it with `make bench ARGS=brokers`"

    with contextlib.suppress(KeyError):  # registered once per process
        cqrs.OutboxedEventMap.register("bench_order_placed", cqrs.NotificationEvent)
    topic, exchange = f"cqrs-bench-{uuid.uuid4().hex[:8]}", "cqrs-bench"
    engine = create_async_engine(URL, connect_args={"server_settings": {"search_path": schema}})
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(OutboxModel.metadata.create_all)
        async with sessions() as session:
            repository = SqlAlchemyOutboxedEventRepository(session)
            for i in range(n):
                repository.add(
                    cqrs.NotificationEvent(
                        event_name="bench_order_placed", topic=topic, payload={"order_id": f"o-{i}"}
                    )
                )
            await repository.commit()
        # The queue and exchange exactly as its publisher declares them, so the consumer
        # can attach before the first message.
        amqp = await aio_pika.connect(RABBIT_URL)
        async with amqp:
            channel = await amqp.channel()
            queue = await channel.declare_queue(topic)
            bound = await channel.declare_exchange(exchange, type="direct", auto_delete=True)
            await queue.bind(exchange=bound, routing_key=topic)
            async with _consumer("rabbit", topic, n) as last_arrival:
                broker = AMQPMessageBroker(amqp_publisher_factory(RABBIT_URL), exchange)
                started_at, started = time.time(), time.perf_counter()
                sent = 0
                async with sessions() as session:
                    repository = SqlAlchemyOutboxedEventRepository(session)
                    producer = EventProducer(broker, repository)
                    while True:
                        events = await repository.get_many(BATCH)
                        if not events:
                            break
                        for event in events:
                            await producer.send_message(event)
                        await repository.commit()
                        sent += len(events)
                elapsed = time.perf_counter() - started
                assert sent == n, (sent, n)
                finished_at = await last_arrival()
            await queue.delete(if_unused=False, if_empty=False)
        return Rates(n / elapsed, n / (finished_at - started_at))
    finally:
        await engine.dispose()


# -- the run ------------------------------------------------------------------------------


def _rabbit() -> Transport:
    return RabbitTransport(RABBIT_URL)


def _nats() -> Transport:
    return NatsTransport(NATS_URL, max_ack_pending=NATS_MAX_ACK_PENDING)


def _median(rates: list[Rates]) -> Rates:
    return Rates(
        statistics.median(r.relay for r in rates), statistics.median(r.end_to_end for r in rates)
    )


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def _reachable(
    brokers: dict[str, Callable[[], Transport]],
) -> dict[str, Callable[[], Transport]]:
    reachable = {}
    for kind, make in brokers.items():
        transport = make()
        try:
            await transport.declare(f"bench-probe-{kind}", GROUP)
        except Exception as exc:
            print(f"\n## brokers: {kind} not reachable ({type(exc).__name__}: {exc}); skipped")
        else:
            reachable[kind] = make
        finally:
            await transport.close()
    return reachable


async def main() -> None:
    schema = f"dockyard_bench_brokers_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(DSN)
    except OSError as exc:
        print(f"\n## brokers: PostgreSQL not reachable at {DSN} ({exc}); skipped")
        return
    brokers = await _reachable({"rabbit": _rabbit, "nats": _nats})
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        database = Database(URL, connect_args={"server_settings": {"search_path": schema}})
        await database.create_tables()
        await database.dispose()
        print("\n## outbox relay → brokers: PostgreSQL outbox, a consumer draining")
        print(f"target: ≥ 10,000 msg/s to RabbitMQ and to NATS; {N:,} rows over {KEYS:,} keys,")
        print(f"batch {BATCH}, median of {ROUNDS} runs ({ONE_BY_ONE_N:,} rows for one by one,")
        print(f"{CQRS_N:,} for python-cqrs)")
        if "nats" in brokers:
            print(
                f"NATS group: max_ack_pending={NATS_MAX_ACK_PENDING:,}, so its consumers work in "
                "parallel; this gives up per-key order across a consumer crash (the default, 1, "
                "keeps it and hands out one message at a time)"
            )
        rows: list[tuple[str, str, Rates | str]] = []
        for kind, make in brokers.items():
            for relays in (1, 2):
                rates = [
                    await relay_throughput(schema, kind, make, N, relays=relays)
                    for _ in range(ROUNDS)
                ]
                name = f"dockyard, {relays} relay{'s' if relays > 1 else ''}"
                rows.append((kind, name, _median(rates)))
            alone = [
                await relay_throughput(schema, kind, make, N, consumer=False) for _ in range(ROUNDS)
            ]
            rows.append((kind, "dockyard, 1, no consumer", _median(alone)))
            serial = [
                await relay_throughput(schema, kind, make, N, pipeline=1) for _ in range(ROUNDS)
            ]
            rows.append((kind, "dockyard, 1, pipeline 1", _median(serial)))
            single = await relay_throughput(schema, kind, make, ONE_BY_ONE_N, one_by_one=True)
            rows.append((kind, "dockyard, 1, one by one", single))
            if kind == "rabbit":
                rows.append((kind, "python-cqrs 5.3", await cqrs_throughput(schema, CQRS_N)))
            else:
                rows.append((kind, "python-cqrs 5.3", "no NATS broker in python-cqrs"))
        print(f"{'broker':<7} {'contender':<24} {'relay msg/s':>12} {'end to end msg/s':>17}")
        for kind, name, row in rows:
            if isinstance(row, str):
                print(f"{kind:<7} {name:<24} {'-':>12} {'-':>17}  {row}")
            else:
                end = "-" if math.isnan(row.end_to_end) else f"{row.end_to_end:,.0f}"
                print(f"{kind:<7} {name:<24} {row.relay:>12,.0f} {end:>17}")
        print("\n## outbox latency: commit → remote handler (LISTEN/NOTIFY wake-up, one at a time)")
        for kind, make in brokers.items():
            samples = await latency(schema, make)
            print(
                f"{kind:<7} {len(samples)} messages: p50 {_percentile(samples, 0.5):.2f} ms, "
                f"p99 {_percentile(samples, 0.99):.2f} ms"
            )
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
