"""Scheduled messages on PostgreSQL (docs/design/scheduled-messages.md).

* Future rows cost the relay nothing: ``bench.outbox``'s throughput run (``N`` pending rows over
  1,000 keys, one relay, batches of 500), with and without 100,000 scheduled rows due in a day,
  interleaved round by round. Target: with / without ≥ 0.9.
* Lateness: a producer app schedules ``LATE_MESSAGES`` messages, each in its own scope, due
  0.5–5.5 s later (spread at random); its worker's relay publishes them to a consumer app over
  the in-memory transport. Recorded: the consumer handler's time minus the due time. Target:
  p99 ≤ 250 ms, none early.
* Timers due at once: 10,000 scheduled rows all due now, drained by one relay (promotion and
  publishing). Target (issue #14, sagas): ≥ 2,000/s.

Run: ``python -m bench.scheduled`` (or ``make bench ARGS=scheduled``). Needs PostgreSQL on
127.0.0.1:5432 (``DOCKYARD_BENCH_POSTGRES_DSN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
import uuid
from dataclasses import dataclass

import asyncpg

from bench.outbox import DSN, URL, bench_schema, fill
from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Command, RequestHandler
from dockyard.modules import module
from dockyard.outbox import Outbox, OutboxModule, OutboxRelay, RelaySettings
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.sql import Database, SqlModule, SqlOutboxBackend, SqlOutboxStore
from dockyard.transport.memory import InMemoryTransport

N = 50_000
FUTURE = 100_000
ROUNDS = 5
LATE_MESSAGES = 1_000
AT_ONCE = 10_000


@dataclass(frozen=True, slots=True)
class Remind(Command[None]):
    order_id: str


_arrivals: dict[str, float] = {}
_all_arrived = asyncio.Event()


class Reminded(RequestHandler[Remind, None]):
    async def handle(self, request: Remind, /) -> None:
        _arrivals[request.order_id] = time.time()
        if len(_arrivals) >= LATE_MESSAGES:
            _all_arrived.set()


async def _schedule(raw: asyncpg.Connection, n: int, due: float) -> None:
    now = time.time()
    records = [
        (f"{uuid.uuid4()}", "orders", "Remind", 1, b'{"order_id":"o"}',
         '{"correlation-id":"c"}', f"k-{i % 1_000}", now, due)
        for i in range(n)
    ]  # fmt: skip
    await raw.copy_records_to_table(
        "dockyard_outbox_scheduled",
        records=records,
        columns=[
            "message_id", "destination", "type_name", "schema_version", "payload", "headers",
            "partition_key", "created_at", "deliver_at",
        ],
    )  # fmt: skip


async def _drain(schema: str, expected: int) -> float:
    database = Database(URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        transport = InMemoryTransport()
        relay = OutboxRelay(SqlOutboxStore(database), transport, RelaySettings(batch_size=500))
        started = time.perf_counter()
        delivered = await relay.drain()
        while delivered < expected:  # a neighbour on the server (the test suite) held a key
            delivered += await relay.drain()  # lock of the same name: its rows were skipped
        elapsed = time.perf_counter() - started
        assert delivered == expected == transport.published, (delivered, transport.published)
        return expected / elapsed
    finally:
        await database.dispose()


async def throughput(schema: str, *, future: int) -> float:
    raw = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    try:
        await raw.execute("TRUNCATE dockyard_outbox, dockyard_outbox_scheduled")
        await fill(raw, N)
        if future:
            await _schedule(raw, future, time.time() + 86_400)
        await raw.execute("ANALYZE dockyard_outbox")
        await raw.execute("ANALYZE dockyard_outbox_scheduled")
    finally:
        await raw.close()
    return await _drain(schema, N)


async def at_once(schema: str) -> float:
    raw = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    try:
        await raw.execute("TRUNCATE dockyard_outbox, dockyard_outbox_scheduled")
        await _schedule(raw, AT_ONCE, time.time())
        await raw.execute("ANALYZE dockyard_outbox_scheduled")
    finally:
        await raw.close()
    return await _drain(schema, AT_ONCE)


async def lateness(schema: str) -> tuple[list[float], int]:
    """Milliseconds from each message's due time to its handler; and how many came early."""
    transport = InMemoryTransport()
    url_options = {"connect_args": {"server_settings": {"search_path": schema}}}

    @module(
        imports=[
            SqlModule.register(URL, **url_options),
            OutboxModule.register(transport=transport, backend=SqlOutboxBackend()),
        ]
    )
    class Producer: ...

    @module(
        handlers=[Reminded],
        imports=[
            OutboxModule.register(
                transport=transport, backend=InMemoryOutboxBackend(), run_relay=False
            ),
            ConsumerModule.register(endpoints=[listen("reminders", group="bench")]),
        ],
    )
    class Consumer: ...

    rng = random.Random(1)
    producer, consumer = App.build(Producer), App.build(Consumer)
    stop = asyncio.Event()
    due: dict[str, float] = {}
    async with producer, consumer:
        workers = [
            asyncio.create_task(producer.run_worker(stop=stop)),
            asyncio.create_task(consumer.run_worker(stop=stop)),
        ]
        await asyncio.sleep(0.3)  # LISTEN connection up, consumer subscribed
        for i in range(LATE_MESSAGES):
            order_id = f"o-{i}"
            due[order_id] = when = time.time() + rng.uniform(0.5, 5.5)
            async with producer.scope() as scope:
                outbox = await scope.get(Outbox)
                await outbox.add(Remind(order_id), destination="reminders", deliver_at=when)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_all_arrived.wait(), max(due.values()) + 10 - time.time())
        stop.set()
        await asyncio.gather(*workers)
    late = [(_arrivals[o] - at) * 1e3 for o, at in due.items() if o in _arrivals]
    missing = LATE_MESSAGES - len(late)
    assert not missing, f"{missing} scheduled messages never arrived"
    return late, sum(1 for ms in late if ms < 0)


async def main() -> None:
    async with bench_schema("scheduled") as schema:
        if schema is None:
            return
        print("\n## scheduled messages: future rows vs the relay's throughput (PostgreSQL)")
        print(f"target: with {FUTURE:,} future rows ≥ 0.9× without")
        await throughput(schema, future=0)  # warm-up: connections, caches, the plan
        rates: dict[int, list[float]] = {0: [], FUTURE: []}
        for round_number in range(ROUNDS):
            order = (0, FUTURE) if round_number % 2 == 0 else (FUTURE, 0)
            for future in order:
                rates[future].append(await throughput(schema, future=future))
        without, with_future = statistics.median(rates[0]), statistics.median(rates[FUTURE])
        print(f"{'future rows':>12}  {'msg/s (median of 5)':>20}")
        print(f"{0:>12,}  {without:>20,.0f}")
        print(f"{FUTURE:>12,}  {with_future:>20,.0f}")
        print(f"ratio: {with_future / without:.2f}×")

        rate = statistics.median([await at_once(schema) for _ in range(ROUNDS)])
        print(f"\n## scheduled messages: {AT_ONCE:,} due at once, one relay")
        print(f"target: ≥ 2,000/s; measured {rate:,.0f}/s (median of 5)")

        late, early = await lateness(schema)
        late.sort()
        p50 = late[len(late) // 2]
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
        print("\n## scheduled messages: due time → consumer handler (one worker)")
        print("target: p99 ≤ 250 ms, none early")
        print(
            f"{len(late)} messages due over 5 s: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"max {late[-1]:.1f} ms, early {early}"
        )


if __name__ == "__main__":
    asyncio.run(main())
