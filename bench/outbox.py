"""Outbox relay: throughput from PostgreSQL to the in-memory transport, and commit-to-handler
latency through the whole path (commit → NOTIFY → relay → transport → consumer → handler).

* Throughput: the outbox is filled with ``N`` pending rows (COPY), then one relay drains it in
  batches (claim with per-key advisory locks + ``SKIP LOCKED``, publish, mark delivered,
  commit). Target: ≥ 20,000 msg/s.
* Latency: one app routes ``OrderPlaced`` to ``"orders"`` through the SQL outbox on PostgreSQL;
  another consumes it (its inbox in memory) from the same in-memory
  transport. Each event is published in its own scope; the time from the scope's commit to
  the consumer's handler is recorded. p50 and p99 are printed.

Run: ``python -m bench.outbox`` (or ``make bench ARGS=outbox``). Needs PostgreSQL on
127.0.0.1:5432 (``DOCKYARD_BENCH_POSTGRES_DSN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import (
    OutboxModule,
    OutboxRelay,
    RelaySettings,
    route,
)
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.sql import Database, SqlModule, SqlOutboxBackend, SqlOutboxStore
from dockyard.transport.memory import InMemoryTransport

DSN = os.environ.get("DOCKYARD_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
URL = DSN.replace("postgresql://", "postgresql+asyncpg://")
N = 50_000
KEYS = 1_000
LATENCY_MESSAGES = 500


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    order_id: str


_arrivals: dict[str, float] = {}


class Arrived(EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        _arrivals[event.order_id] = time.perf_counter()


async def fill(raw: asyncpg.Connection, n: int) -> None:
    now = time.time()
    records = [
        (f"{uuid.uuid4()}", "orders", "OrderPlaced", 1, b'{"order_id":"o"}',
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


async def throughput(schema: str, batch_size: int) -> float:
    database = Database(URL, connect_args={"server_settings": {"search_path": schema}})
    raw = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    try:
        await raw.execute("TRUNCATE dockyard_outbox")
        await fill(raw, N)
        await raw.execute("ANALYZE dockyard_outbox")
        transport = InMemoryTransport()
        relay = OutboxRelay(
            SqlOutboxStore(database), transport, RelaySettings(batch_size=batch_size)
        )
        started = time.perf_counter()
        delivered = await relay.drain()
        elapsed = time.perf_counter() - started
        assert delivered == N == transport.published, (delivered, transport.published)
        return N / elapsed
    finally:
        await raw.close()
        await database.dispose()


async def latency(schema: str) -> list[float]:
    transport = InMemoryTransport()
    url_options = {"connect_args": {"server_settings": {"search_path": schema}}}

    @module(
        imports=[
            SqlModule.register(URL, **url_options),
            OutboxModule.register(
                transport=transport,
                backend=SqlOutboxBackend(),
                routes=[route(OrderPlaced).to("orders", partition_key=lambda e: e.order_id)],
            ),
        ]
    )
    class Producer: ...

    @module(
        handlers=[Arrived],
        imports=[
            OutboxModule.register(
                transport=transport, backend=InMemoryOutboxBackend(), run_relay=False
            ),
            ConsumerModule.register(endpoints=[listen("orders", group="bench")]),
        ],
    )
    class Consumer: ...

    producer, consumer = App.build(Producer), App.build(Consumer)
    stop = asyncio.Event()
    async with producer, consumer:
        workers = [
            asyncio.create_task(producer.run_worker(stop=stop)),
            asyncio.create_task(consumer.run_worker(stop=stop)),
        ]
        await asyncio.sleep(0.3)  # LISTEN connection up, consumer subscribed
        committed: dict[str, float] = {}
        for i in range(LATENCY_MESSAGES):
            order_id = f"o-{i}"
            await producer.publish(OrderPlaced(order_id))  # its scope commits on return
            committed[order_id] = time.perf_counter()
            for _ in range(2000):
                if order_id in _arrivals:
                    break
                await asyncio.sleep(0.0002)
            await asyncio.sleep(0.001)
        stop.set()
        await asyncio.gather(*workers)
    return [(_arrivals[o] - t) * 1e3 for o, t in committed.items() if o in _arrivals]


@contextlib.asynccontextmanager
async def bench_schema(scenario: str) -> AsyncIterator[str | None]:
    """A schema of its own with dockyard's tables, dropped after; ``None`` (and a line that
    says so) when PostgreSQL cannot be reached."""
    schema = f"dockyard_bench_{scenario}_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(DSN)
    except OSError as exc:
        print(f"\n## {scenario}: PostgreSQL not reachable at {DSN} ({exc}); skipped")
        yield None
        return
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        database = Database(URL, connect_args={"server_settings": {"search_path": schema}})
        await database.create_tables()
        await database.dispose()
        yield schema
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def main() -> None:
    async with bench_schema("outbox") as schema:
        if schema is None:
            return
        print("\n## outbox relay: PostgreSQL → in-memory transport, one relay")
        print("target: ≥ 20,000 msg/s (python-cqrs 5.3's relay measured ≈ 1,700 msg/s here)")
        print(f"{'batch size':>10}  {'msg/s (median of 3)':>20}  messages")
        for batch in (100, 500, 1000):
            rates = [await throughput(schema, batch) for _ in range(3)]
            print(f"{batch:>10}  {statistics.median(rates):>20,.0f}  {N:,} over {KEYS:,} keys")
        samples = await latency(schema)
        samples.sort()
        p50 = samples[len(samples) // 2]
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print("\n## outbox latency: commit → consumer handler (LISTEN/NOTIFY wake-up)")
        print(f"{len(samples)} messages, one at a time: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
