"""Several transports in one app: relay throughput to RabbitMQ alone, NATS alone, and both at
once (one relay loop per transport, as the worker of an app with two transports runs them).

The outbox (PostgreSQL) is filled with ``N`` pending rows per transport over ``KEYS`` keys; each
relay loop claims only its transport's destinations (``Destinations``, the same filter
``OutboxModule.register(transports=...)`` gives its loops) and drains them without a consumer
(the broker keeps the messages, as ``bench.brokers`` "relay alone"). "both" is ``2 N`` rows,
interleaved in the outbox, over the time until both loops are done.

The same two loops then run in ``dockyard worker`` processes (``bench._transports_app``):
"one worker process" runs both (what ``dockyard worker`` does by default: one event loop, one
core), "two worker processes" one each (``--only outbox-relay`` and ``--only
outbox-relay:nats``), so each loop has a core of its own. The workers start first; the rows
are written in one transaction, and the time runs from its commit until the outbox holds no
pending row of that transport (polled every ``WATCH`` s).
Target (issue #17): both at once ≥ 0.9 × (RabbitMQ alone + NATS alone).

Run: ``python -m bench transports``. Needs PostgreSQL, RabbitMQ and NATS on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.brokers import (
    BATCH,
    DSN,
    KEYS,
    URL,
    _fill,
    _forget,
    _nats,
    _rabbit,
    _reachable,
)
from bench.outbox import bench_schema
from dockyard.outbox import NamedTransport, OutboxRelay, OutboxStatus, RelaySettings, Transports
from dockyard.sql import Database, SqlOutboxStore
from dockyard.transport import Subscription, TransportMessage

N = 10_000
REMOTE_N = 4_000
REMOTE_BATCH = 100
REMOTE_RTT = 0.1
"""A far broker: every publish waits this long more (a network round trip), so each loop
waits on its broker, not on the CPU (which one local broker's loop already fills here)."""
ROUNDS = 3
WATCH = 0.05
"""How often the bench reads the outbox while worker processes relay it."""
ROOT = Path(__file__).resolve().parents[1]
WORKER = [
    sys.executable, "-c", "import sys; from dockyard.cli import main; main(sys.argv[1:])",
    "worker", "bench._transports_app:app", "--log-level", "WARNING", "--grace", "10",
]  # fmt: skip
SPLITS: dict[str, list[list[str]]] = {
    "one worker process": [[]],
    "two worker processes": [["--only", "outbox-relay"], ["--only", "outbox-relay:nats"]],
}


class Remote:
    """A transport ``REMOTE_RTT`` away: each publish (of one message or a batch) takes that
    much longer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def publish(self, message: TransportMessage, /) -> None:
        await asyncio.sleep(REMOTE_RTT)
        await self.inner.publish(message)

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        await asyncio.sleep(REMOTE_RTT)
        await self.inner.publish_many(messages)

    async def declare(self, destination: str, group: str) -> None:
        await self.inner.declare(destination, group)

    def subscribe(
        self, destination: str, group: str, *, prefetch: int = 1
    ) -> AbstractAsyncContextManager[Subscription]:
        return self.inner.subscribe(destination, group, prefetch=prefetch)  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.inner.close()


@dataclass(frozen=True, slots=True)
class Rate:
    per_second: float
    """The sum of each loop's rate: its rows over the time it took to drain them."""
    cpu: float
    """The relay process's CPU time over the wall time (1.0: one core, all the time)."""
    machine: float
    """How busy the machine's CPUs were meanwhile, every process (1.0: all of them, always)."""


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies of every CPU since boot (Linux ``/proc/stat``; zeros elsewhere)."""
    try:
        with Path("/proc/stat").open(encoding="ascii") as stat:
            fields = [int(f) for f in stat.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


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


async def run(schema: str, which: tuple[str, ...], *, remote: bool = False) -> Rate:
    """Messages per second relayed to the transports ``which`` (of ``rabbit``, ``nats``);
    ``remote``: brokers ``REMOTE_RTT`` away (``Remote``), batches of ``REMOTE_BATCH``."""
    n = REMOTE_N if remote else N
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
        settings = RelaySettings(batch_size=REMOTE_BATCH if remote else BATCH)
        relays = []
        for name in which:
            named, destination = loops[name]
            publishing = Remote(named.publishing) if remote else named.publishing
            relay = OutboxRelay(store, publishing, settings, destinations=named.destinations)
            relays.append((relay, destination))  # fmt: skip
        started, cpu, (busy, total) = time.perf_counter(), time.process_time(), _cpu_times()
        took = await asyncio.gather(*(_drain(store, r, d) for r, d in relays))
        elapsed = time.perf_counter() - started
        counts = await store.counts_by_destination()
        for _, destination in relays:
            assert counts[destination][OutboxStatus.DELIVERED] == n, counts
        busy_after, total_after = _cpu_times()
        machine = (busy_after - busy) / max(1, total_after - total)
        return Rate(sum(n / t for t in took), (time.process_time() - cpu) / elapsed, machine)
    finally:
        await raw.close()
        await database.dispose()
        for name in which:
            await _forget(loops[name][0].transport, loops[name][1].removeprefix("nats://"))
        await rabbit.close()
        await nats.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _ready(process: asyncio.subprocess.Process, port: int) -> None:
    """Wait until the worker's ``/readyz`` answers 200 (every relay loop running)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.returncode is not None:
            msg = f"a bench worker exited with {process.returncode} (run `{' '.join(WORKER)}`)"
            raise RuntimeError(msg)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.write(b"GET /readyz HTTP/1.1\r\nHost: bench\r\n\r\n")
        status = (await reader.read()).split(b" ", 2)[1]
        writer.close()
        if status == b"200":
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("a bench worker did not get ready in 120 s")


def _cpu_seconds(pid: int) -> float:
    """The user + system CPU time of process ``pid`` so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_workers(schema: str, split: list[list[str]]) -> Rate:
    """Messages per second the relay loops of ``dockyard worker`` processes (one per entry
    of ``split``, each with those options) relay to RabbitMQ and NATS; ``cpu``: all the
    workers' CPU time over the wall time."""
    rabbit, nats = _rabbit(), _nats()
    tag = uuid.uuid4().hex[:8]
    destinations = {rabbit: f"bench-rabbit-{tag}", nats: f"nats://bench-nats-{tag}"}
    raw = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    workers: list[asyncio.subprocess.Process] = []
    try:
        for transport, destination in destinations.items():
            await transport.declare(destination.removeprefix("nats://"), "bench")
        await raw.execute("TRUNCATE dockyard_outbox")
        env = {**os.environ, "DOCKYARD_BENCH_SCHEMA": schema, "PYTHONPATH": str(ROOT)}
        ports = [_free_port() for _ in split]
        for port, options in zip(ports, split, strict=True):
            command = [*WORKER, "--health-port", str(port), *options]
            workers.append(
                await asyncio.create_subprocess_exec(
                    *command, cwd=ROOT, env=env, stderr=asyncio.subprocess.DEVNULL
                )
            )
        for worker, port in zip(workers, ports, strict=True):
            await _ready(worker, port)
        async with raw.transaction():  # the relays see every row at once, at the commit
            await _fill_interleaved(raw, list(destinations.values()), N)
        started, (busy, total) = time.perf_counter(), _cpu_times()
        cpu = sum(_cpu_seconds(w.pid) for w in workers)
        took: dict[str, float] = {}
        while len(took) < len(destinations):
            await asyncio.sleep(WATCH)
            pending = dict(
                await raw.fetch(
                    "SELECT destination, count(*) FROM dockyard_outbox "
                    "WHERE status = 'pending' GROUP BY destination"
                )
            )
            now = time.perf_counter() - started
            for destination in destinations.values():
                if destination not in took and not pending.get(destination):
                    took[destination] = now
        elapsed = max(took.values())
        cpu = sum(_cpu_seconds(w.pid) for w in workers) - cpu
        busy_after, total_after = _cpu_times()
        delivered = dict(
            await raw.fetch(
                "SELECT destination, count(*) FROM dockyard_outbox "
                "WHERE status = 'delivered' GROUP BY destination"
            )
        )
        assert all(delivered[d] == N for d in destinations.values()), delivered
        machine = (busy_after - busy) / max(1, total_after - total)
        return Rate(sum(N / t for t in took.values()), cpu / elapsed, machine)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                await asyncio.wait_for(worker.wait(), 30)
            except TimeoutError:
                worker.kill()
                await worker.wait()
        await raw.close()
        for transport, destination in destinations.items():
            await _forget(transport, destination.removeprefix("nats://"))
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
        print("CPU time / wall time (1.00 = one core: a Python process's event loop is one core;")
        print("the worker rows: all its workers' CPU time, so two processes may pass 1.00);")
        print("machine: how busy all CPUs were (PostgreSQL, the brokers, other processes too)")
        print("target (issue #17): both at once ≥ 0.90 × (rabbit alone + nats alone)")
        for remote in (False, True):
            n = REMOTE_N if remote else N
            how = (
                f"brokers {REMOTE_RTT * 1000:.0f} ms away, batch {REMOTE_BATCH}"
                if remote
                else "local brokers"
            )
            print(f"\n{how}, {n:,} rows per transport")
            rates: dict[str, list[Rate]] = {}
            for _ in range(ROUNDS):  # alternate, so a drift of the shared machine hits all alike
                for which in (("rabbit",), ("nats",), ("rabbit", "nats")):
                    found = await run(schema, which, remote=remote)
                    label = "both in one process" if len(which) == 2 else f"{which[0]} alone"
                    rates.setdefault(label, []).append(found)
                for label, split in SPLITS.items() if not remote else ():
                    rates.setdefault(label, []).append(await run_workers(schema, split))
            median = {
                label: statistics.median(r.per_second for r in f) for label, f in rates.items()
            }
            alone = median["rabbit alone"] + median["nats alone"]
            for label, found in rates.items():
                cpu = statistics.median(r.cpu for r in found)
                machine = statistics.median(r.machine for r in found)
                ratio = "" if label.endswith("alone") else f"  {median[label] / alone:.2f} × sum"
                print(
                    f"{label:>22}  {median[label]:>10,.0f} msg/s  cpu {cpu:.2f}  "
                    f"machine {machine:.0%}{ratio}"
                )
            print("sum: rabbit alone + nats alone (target ≥ 0.90 × sum)")


if __name__ == "__main__":
    asyncio.run(main())
