"""Several transports in one app: relay throughput to RabbitMQ alone, NATS alone, and both at
once (one relay loop per transport, as the worker of an app with two transports runs them).

The outbox (PostgreSQL) is filled with ``N`` pending rows per transport over ``KEYS`` keys; each
relay loop claims only its transport's destinations (``Destinations``, the same filter
``OutboxModule.register(transports=...)`` gives its loops) and drains them without a consumer
(the broker keeps the messages, as ``bench.brokers`` "relay alone"). "both" is ``2 N`` rows,
interleaved in the outbox, over the time until both loops are done.
Target (issue #17): both at once ≥ 0.9 × (RabbitMQ alone + NATS alone).

Run: ``python -m bench transports``. Needs PostgreSQL, RabbitMQ and NATS on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass

import asyncpg

from bench.brokers import (
    BATCH,
    DSN,
    KEYS,
    URL,
    OneByOne,
    _fill,
    _forget,
    _nats,
    _rabbit,
    _reachable,
)
from bench.outbox import bench_schema
from dockyard.outbox import NamedTransport, OutboxRelay, OutboxStatus, RelaySettings, Transports
from dockyard.sql import Database, SqlOutboxStore

N = 10_000
ONE_BY_ONE_N = 2_000
ROUNDS = 3


@dataclass(frozen=True, slots=True)
class Rate:
    per_second: float
    """The sum of each loop's rate: its rows over the time it took to drain them."""
    cpu: float
    """The relay process's CPU time over the wall time (1.0: one core, all the time)."""


async def _drain(store: SqlOutboxStore, relay: OutboxRelay, destination: str) -> float:
    """Relay until ``destination`` has nothing pending (a drain stops when a claim finds
    nothing free, e.g. while its other relays hold the rest); return how long it took."""
    started = time.perf_counter()
    while True:
        await relay.drain()
        counts = (await store.counts_by_destination()).get(destination, {})
        if counts.get(OutboxStatus.PENDING, 0) == 0:
            return time.perf_counter() - started
        await asyncio.sleep(0.001)


async def _fill_interleaved(raw: asyncpg.Connection, destinations: list[str], n: int) -> None:
    for start in range(0, n, BATCH):  # BATCH rows of each in turn
        for destination in destinations:
            await _fill(raw, destination, min(BATCH, n - start))


async def run(schema: str, which: tuple[str, ...], *, one_by_one: bool = False) -> Rate:
    """Messages per second relayed to the transports ``which`` (of ``rabbit``, ``nats``);
    ``one_by_one``: each publish awaited in turn, so a loop waits on its broker (I/O-bound)."""
    n = ONE_BY_ONE_N if one_by_one else N
    rabbit, nats = _rabbit(), _nats()
    transports = Transports(rabbit, {"nats": nats})
    tag = uuid.uuid4().hex[:8]
    loops: dict[str, tuple[NamedTransport, str]] = {
        "rabbit": (transports.default, f"bench-rabbit-{tag}"),
        "nats": (next(t for t in transports if t.name == "nats"), f"nats://bench-nats-{tag}"),
    }
    database = Database(URL, connect_args={"server_settings": {"search_path": schema}})
    raw = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    try:
        for name in which:
            named, destination = loops[name]
            await named.publishing.declare(destination, "bench")
        await raw.execute("TRUNCATE dockyard_outbox")
        await _fill_interleaved(raw, [loops[name][1] for name in which], n)
        await raw.execute("ANALYZE dockyard_outbox")
        store = SqlOutboxStore(database)
        settings = RelaySettings(batch_size=BATCH)
        relays = []
        for name in which:
            named, destination = loops[name]
            publishing = OneByOne(named.publishing) if one_by_one else named.publishing
            relay = OutboxRelay(store, publishing, settings, destinations=named.destinations)
            relays.append((relay, destination))  # fmt: skip
        started, cpu = time.perf_counter(), time.process_time()
        took = await asyncio.gather(*(_drain(store, r, d) for r, d in relays))
        elapsed = time.perf_counter() - started
        counts = await store.counts_by_destination()
        for _, destination in relays:
            assert counts[destination][OutboxStatus.DELIVERED] == n, counts
        return Rate(sum(n / t for t in took), (time.process_time() - cpu) / elapsed)
    finally:
        await raw.close()
        await database.dispose()
        for name in which:
            await _forget(loops[name][0].transport, loops[name][1].removeprefix("nats://"))
        await rabbit.close()
        await nats.close()


async def main() -> None:
    brokers = await _reachable({"rabbit": _rabbit, "nats": _nats})
    if set(brokers) != {"rabbit", "nats"}:
        print("\n## transports: needs RabbitMQ and NATS; skipped")
        return
    async with bench_schema("transports") as schema:
        if schema is None:
            return
        print("\n## outbox relay, two transports in one app: PostgreSQL → RabbitMQ and NATS")
        print(f"over {KEYS:,} keys, batch {BATCH}, median of {ROUNDS}; cpu: the relay process's")
        print("CPU time / wall time (1.00 = one core: a Python process's event loop is one core)")
        print("target (issue #17): both at once ≥ 0.90 × (rabbit alone + nats alone)")
        for one_by_one in (False, True):
            n = ONE_BY_ONE_N if one_by_one else N
            how = "one by one (each publish awaited: I/O-bound)" if one_by_one else "publish_many"
            print(f"\n{how}, {n:,} rows per transport")
            rates: dict[tuple[str, ...], list[Rate]] = {}
            for _ in range(ROUNDS):  # alternate, so a drift of the shared machine hits all alike
                for which in (("rabbit",), ("nats",), ("rabbit", "nats")):
                    found = await run(schema, which, one_by_one=one_by_one)
                    rates.setdefault(which, []).append(found)
            alone = 0.0
            for which, found in rates.items():
                rate = statistics.median(r.per_second for r in found)
                cpu = statistics.median(r.cpu for r in found)
                alone += rate if len(which) == 1 else 0.0
                print(f"{' + '.join(which):>15}  {rate:>10,.0f} msg/s  cpu {cpu:.2f}")
            both = statistics.median(r.per_second for r in rates["rabbit", "nats"])
            print(f"both / (rabbit alone + nats alone) = {both / alone:.2f} (target ≥ 0.90)")


if __name__ == "__main__":
    asyncio.run(main())
