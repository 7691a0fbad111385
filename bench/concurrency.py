"""Concurrent appenders on PostgreSQL: 50 writers, one event per transaction.

Contenders (run one after another within each round, in a new order each round; each opens its
50 connections before its timed part and closes them after, so at most 50 are open at once):

* raw asyncpg, 50 connections, ``BEGIN; INSERT INTO raw_events ...; COMMIT`` with positions
  from a sequence (baseline);
* dockyard, a ``Database`` with a pool of 50: ``UnitOfWork`` + ``SqlEventStore.append`` of one
  event to a new stream (version check, stream row, announcement, position; the events table's
  ``NOTIFY`` trigger fires at each commit);
* dockyard with the ``NOTIFY`` trigger that earlier versions put on ``dockyard_events``
  (every appending transaction notifies at its commit; PostgreSQL serialises notifying
  commits on a database-wide lock) in place of today's after-commit notification, one in
  flight per process (sql/_notices.py);
* dockyard appending one event and adding one outbox message in the same transaction, with
  today's wake-ups and with the triggers of earlier versions (the real app shape of an
  event-sourced handler whose event leaves through the outbox).

Run: ``python -m bench concurrency`` (or ``make bench ARGS=concurrency``).
``DOCKYARD_BENCH_WRITERS`` (default 50) and ``DOCKYARD_BENCH_ROUNDS`` (default 5) change the
shape. Needs PostgreSQL on 127.0.0.1:5432 (``DOCKYARD_BENCH_POSTGRES_DSN``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from bench._harness import Result, Scenario, print_table
from dockyard.eventsourcing import NO_STREAM
from dockyard.outbox import OutboxMessage
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore, SqlOutboxWriter

DSN = os.environ.get("DOCKYARD_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = f"dockyard_bench_{uuid.uuid4().hex[:8]}"
WRITERS = int(os.environ.get("DOCKYARD_BENCH_WRITERS", "50"))
ROUNDS = int(os.environ.get("DOCKYARD_BENCH_ROUNDS", "5"))
PER_WRITER = 20  # transactions per writer per round


@dataclass(frozen=True, slots=True)
class Deposited:
    account: str
    amount: int


SERIALIZER = Serializer(TypeRegistry([Deposited]))
ENCODE = msgspec.json.Encoder().encode
COLUMNS = (
    "global_position, event_id, stream_id, stream_version, type_name, schema_version, data, "
    "correlation_id, causation_id, occurred_at, recorded_at"
)
INSERT = (
    f"INSERT INTO raw_events ({COLUMNS}) VALUES "
    "(nextval('raw_positions'), $1, $2, 1, 'Deposited', 1, $3, NULL, NULL, $4, $4)"
)

Run = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Contender:
    name: str
    open: Callable[[], Awaitable[tuple[Run, Callable[[], Awaitable[None]]]]]
    """Connects (untimed); returns one writer's transaction and a close function."""
    note: str = ""


async def _writers(run: Run) -> float:
    """All writers, ``PER_WRITER`` transactions each, concurrently; seconds taken."""

    async def writer() -> None:
        for _ in range(PER_WRITER):
            await run()

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(WRITERS)))
    return time.perf_counter() - start


async def _raw() -> tuple[Run, Callable[[], Awaitable[None]]]:
    pool = await asyncpg.create_pool(
        DSN, min_size=WRITERS, max_size=WRITERS, server_settings={"search_path": SCHEMA}
    )

    async def run() -> None:
        now = datetime.now(UTC)
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                INSERT, uuid.uuid4(), f"Raw-{uuid.uuid4().hex}", ENCODE(Deposited("a", 1)), now
            )

    return run, pool.close


class _Silent:
    """Stands in for ``Database.notices``: no wake-ups at all (what they cost, by difference)."""

    def notify_inside(self, uow: object, channel: str) -> bool:
        return False

    def callback(self, channel: str) -> Callable[[], None]:
        return lambda: None

    async def close(self) -> None:
        return None


def _dockyard(
    *, outbox: bool, wake_ups: bool = True
) -> Callable[[], Awaitable[tuple[Run, Callable[[], Any]]]]:
    async def start() -> tuple[Run, Callable[[], Awaitable[None]]]:
        database = Database(
            DSN.replace("postgresql://", "postgresql+asyncpg://"),
            pool_size=WRITERS,
            max_overflow=0,
            connect_args={"server_settings": {"search_path": SCHEMA}},
        )
        if not wake_ups:
            database.notices = _Silent()  # type: ignore[assignment]
        # open every connection before the timed part, as the raw pool does
        units = [database.unit_of_work() for _ in range(WRITERS)]
        for uow in units:
            await uow.begin()
        for uow in units:
            await uow.close()

        async def run() -> None:
            async with database.unit_of_work() as uow:
                stream = f"Account-{uuid.uuid4().hex}"
                await SqlEventStore(uow, SERIALIZER).append(stream, [Deposited("a", 1)], NO_STREAM)
                if outbox:
                    await SqlOutboxWriter(uow).add(
                        [
                            OutboxMessage(
                                message_id=uuid.uuid4().hex,
                                destination="memory://bench",
                                type_name="Deposited",
                                payload=b"{}",
                                partition_key=stream,
                                created_at=time.time(),
                                next_attempt_at=time.time(),
                            )
                        ]
                    )

        return run, database.dispose

    return start


def _old_trigger(table: str) -> tuple[str, str, str]:
    """The ``NOTIFY`` trigger earlier versions put on ``dockyard_<table>``: create, drop."""
    function = f"""CREATE OR REPLACE FUNCTION dockyard_notify_{table}() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('dockyard_{table}', ''); RETURN NULL;
        END $$"""
    trigger = f"""CREATE TRIGGER dockyard_{table}_notify AFTER INSERT ON dockyard_{table}
        FOR EACH STATEMENT EXECUTE FUNCTION dockyard_notify_{table}()"""
    return function, trigger, f"DROP TRIGGER dockyard_{table}_notify ON dockyard_{table}"


async def _execute(statements: list[str]) -> None:
    connection = await asyncpg.connect(DSN, server_settings={"search_path": SCHEMA})
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _with_old_triggers(tables: list[str], start: Callable[[], Any]) -> Callable[[], Any]:
    async def opened() -> tuple[Run, Callable[[], Awaitable[None]]]:
        run, close = await start()
        triggers = [_old_trigger(table) for table in tables]
        await _execute([statement for t in triggers for statement in t[:2]])

        async def closed() -> None:
            await close()
            await _execute([t[2] for t in triggers])

        return run, closed

    return opened


async def _measure(contenders: list[Contender]) -> list[Result]:
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    order = random.Random(len(contenders))  # a new order each round, the same run to run
    for round_number in range(ROUNDS + 1):  # round 0 warms up
        for contender in order.sample(contenders, len(contenders)):
            run, close = await contender.open()
            try:
                elapsed = await _writers(run)
            finally:
                await close()
            if round_number:
                samples[contender.name].append(elapsed)
    ops = WRITERS * PER_WRITER
    return [
        Result(c.name, statistics.median(samples[c.name]) / ops * 1e6, samples[c.name], c.note)
        for c in contenders
    ]


async def main() -> None:
    """Run the concurrent-appender scenarios and print their tables."""
    try:
        admin = await asyncpg.connect(DSN)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"\n## PostgreSQL: not reachable at {DSN} ({exc}); skipped")
        return
    await admin.execute(f"CREATE SCHEMA {SCHEMA}")
    setup = Database(
        DSN.replace("postgresql://", "postgresql+asyncpg://"),
        connect_args={"server_settings": {"search_path": SCHEMA}},
    )
    try:
        await setup.create_tables()
        await setup.dispose()
        async with asyncpg.create_pool(
            DSN, min_size=1, max_size=1, server_settings={"search_path": SCHEMA}
        ) as pool:
            await pool.execute("CREATE TABLE raw_events (LIKE dockyard_events INCLUDING ALL)")
            await pool.execute("CREATE SEQUENCE raw_positions CACHE 1")
        appenders = [
            Contender("asyncpg, 50 connections", _raw, "BEGIN/INSERT/COMMIT"),
            Contender("dockyard", _dockyard(outbox=False), "uow + append, NOTIFY after commit"),
            Contender(
                "dockyard, no wake-ups",
                _dockyard(outbox=False, wake_ups=False),
                "no NOTIFY at all",
            ),
            Contender(
                "dockyard, NOTIFY trigger",
                _with_old_triggers(["events"], _dockyard(outbox=False)),
                "the trigger of earlier versions",
            ),
        ]
        with_outbox = [
            Contender("asyncpg, 50 connections", _raw, "BEGIN/INSERT/COMMIT"),
            Contender("dockyard + outbox", _dockyard(outbox=True), "NOTIFY after commit"),
            Contender(
                "dockyard + outbox, no wake-ups",
                _dockyard(outbox=True, wake_ups=False),
                "no NOTIFY at all",
            ),
            Contender(
                "dockyard + outbox, NOTIFY triggers",
                _with_old_triggers(["events", "outbox"], _dockyard(outbox=True)),
                "the triggers of earlier versions",
            ),
        ]
        print_table(
            Scenario(
                f"PostgreSQL: {WRITERS} concurrent appenders, 1 event per transaction",
                "asyncpg, 50 connections",
                "dockyard ≥ 0.7× raw throughput (≤ 1.43× its time per append)",
            ),
            await _measure(appenders),
        )
        print_table(
            Scenario(
                f"PostgreSQL: {WRITERS} concurrent appenders, 1 event + 1 outbox message",
                "asyncpg, 50 connections",
                "the wake-ups cost ≤ 10 % of the transaction",
            ),
            await _measure(with_outbox),
        )
    finally:
        await admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        await admin.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
