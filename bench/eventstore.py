"""Event store: dockyard's SQL adapter against the raw drivers and the eventsourcing library.

Contenders, all in one process run, writing the same rows (the shape of ``dockyard_events``)
into same-shaped tables with the same indexes:

* PostgreSQL, append 1 event in its own transaction — raw asyncpg ``BEGIN; INSERT; COMMIT``
  (baseline), dockyard ``UnitOfWork`` + ``SqlEventStore.append`` (expected-version check,
  stream row, xid-derived position: one statement), eventsourcing 9.5 ``Application.save``;
  in blocks of 40 appends, then again one append at a time, interleaved (medians and means);
* PostgreSQL, append 100 events in one transaction — raw asyncpg ``COPY`` (baseline), dockyard,
  eventsourcing;
* PostgreSQL, load a 1,000-event stream and fold it — raw asyncpg ``SELECT`` + msgspec decode +
  fold (baseline), dockyard ``read_stream`` + fold, eventsourcing ``repository.get``;
* the same three on SQLite against raw aiosqlite (``executemany`` in place of COPY).

Run: ``python -m bench.eventstore`` (or ``make bench ARGS=eventstore``). Needs PostgreSQL on
127.0.0.1:5432 (``DOCKYARD_BENCH_POSTGRES_DSN``); PostgreSQL rows are skipped without it.
``DOCKYARD_BENCH_ROUNDS`` (default 5) sets how many interleaved rounds each median is over;
``DOCKYARD_BENCH_DIALECTS=sqlite`` (or ``postgresql``) runs one dialect's scenarios only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import msgspec

from bench._harness import Contender, Scenario, print_means, print_table, run_async
from dockyard.eventsourcing import NO_STREAM
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlEventStore

DSN = os.environ.get("DOCKYARD_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = f"dockyard_bench_{uuid.uuid4().hex[:8]}"
COLUMNS = (
    "global_position",
    "event_id",
    "stream_id",
    "stream_version",
    "type_name",
    "schema_version",
    "data",
    "correlation_id",
    "causation_id",
    "occurred_at",
    "recorded_at",
)
# more rounds on a noisy machine: DOCKYARD_BENCH_ROUNDS=15
ROUNDS = int(os.environ.get("DOCKYARD_BENCH_ROUNDS", "5"))
SINGLES = 200  # single appends per contender per round, in the interleaved table
DIALECTS = os.environ.get("DOCKYARD_BENCH_DIALECTS", "postgresql,sqlite").split(",")


@dataclass(frozen=True, slots=True)
class Deposited:
    amount: int
    note: str


SERIALIZER = Serializer(TypeRegistry([Deposited]))
ENCODE = msgspec.json.Encoder().encode
DECODE = msgspec.json.Decoder(Deposited).decode


def _event(i: int) -> Deposited:
    return Deposited(i, "a deposit of a modest size")


def _fold(events: list[Deposited]) -> int:
    balance = 0
    for event in events:
        balance += event.amount
    return balance


class _Positions:
    """Positions for the raw tables (no sequence, like dockyard's PostgreSQL table)."""

    def __init__(self) -> None:
        self.next = 1

    def take(self, n: int) -> range:
        start, self.next = self.next, self.next + n
        return range(start, start + n)


def _rows(stream_id: str, first: int, count: int, positions: _Positions) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    return [
        (
            position,
            uuid.uuid4(),
            stream_id,
            first + i,
            "Deposited",
            1,
            ENCODE(_event(i)),
            None,
            None,
            now,
            now,
        )
        for i, position in enumerate(positions.take(count))
    ]


def _streams(prefix: str) -> Iterator[str]:
    n = 0
    while True:
        n += 1
        yield f"{prefix}-{n}"


# ------------------------------------------------------------------------------- PostgreSQL


async def _postgres(results: list[tuple[Scenario, list[Any]]]) -> None:
    try:
        admin = await asyncpg.connect(DSN)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"\n## PostgreSQL: not reachable at {DSN} ({exc}); skipped")
        return
    await admin.execute(f"CREATE SCHEMA {SCHEMA}")
    database = Database(
        DSN.replace("postgresql://", "postgresql+asyncpg://"),
        connect_args={"server_settings": {"search_path": SCHEMA}},
    )
    raw = await asyncpg.connect(DSN, server_settings={"search_path": SCHEMA})
    es = _EventsourcingApp.start(SCHEMA)
    try:
        await database.create_tables()
        await raw.execute("CREATE TABLE raw_events (LIKE dockyard_events INCLUDING ALL)")
        positions, names = _Positions(), _streams("Account")
        insert = (
            f"INSERT INTO raw_events ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join(f'${i}' for i in range(1, 12))})"
        )

        async def raw_append_one(n: int) -> None:
            for _ in range(n):
                (row,) = _rows(next(names), 1, 1, positions)
                async with raw.transaction():
                    await raw.execute(insert, *row)

        async def dockyard_append(n: int, size: int) -> None:
            for _ in range(n):
                events = [_event(i) for i in range(size)]
                async with database.unit_of_work() as uow:
                    await SqlEventStore(uow, SERIALIZER).append(next(names), events, NO_STREAM)

        async def raw_copy_hundred(n: int) -> None:
            for _ in range(n):
                rows = _rows(next(names), 1, 100, positions)
                async with raw.transaction():
                    await raw.copy_records_to_table("raw_events", records=rows, columns=COLUMNS)

        one = [
            Contender("asyncpg BEGIN/INSERT/COMMIT", raw_append_one),
            Contender("dockyard", lambda n: dockyard_append(n, 1)),
        ]
        hundred = [
            Contender("asyncpg COPY", raw_copy_hundred),
            Contender("dockyard", lambda n: dockyard_append(n, 100), "per 100 events"),
        ]
        if es is not None:
            one.append(Contender("eventsourcing 9.5", lambda n: es.append(n, 1), "app.save"))
            hundred.append(Contender("eventsourcing 9.5", lambda n: es.append(n, 100)))
        results.append(
            (
                Scenario(
                    "PostgreSQL: append 1 event in its own transaction",
                    "asyncpg BEGIN/INSERT/COMMIT",
                    "dockyard ≥ 0.8× raw asyncpg throughput (≤ 1.25× its time)",
                ),
                await run_async(one, n=40, rounds=ROUNDS),
            )
        )
        # The same, one append at a time, every contender once per round in a new order: blocks
        # of 40 measured the same code 0.97-1.25x from run to run (docs/event-store.md, "One
        # append at a time"); single appends interleaved meet the same moments of the machine.
        singles = await run_async(one, n=1, rounds=ROUNDS * SINGLES)
        results.append(
            (
                Scenario(
                    "PostgreSQL: append 1 event, one append at a time, interleaved",
                    "asyncpg BEGIN/INSERT/COMMIT",
                    "dockyard ≤ 1.25× raw asyncpg's time (median of single appends)",
                ),
                singles,
            )
        )
        results.append(
            (
                Scenario(
                    "PostgreSQL: append 100 events in one transaction",
                    "asyncpg COPY",
                    "dockyard ≥ 0.6× COPY throughput (≤ 1.67× its time)",
                ),
                await run_async(hundred, n=10, rounds=ROUNDS),
            )
        )

        stream = "Account-long"
        async with database.unit_of_work() as uow:
            await SqlEventStore(uow, SERIALIZER).append(
                stream, [_event(i) for i in range(1000)], NO_STREAM
            )
        await raw.copy_records_to_table(
            "raw_events", records=_rows(stream, 1, 1000, positions), columns=COLUMNS
        )
        select = (
            f"SELECT {', '.join(COLUMNS)} FROM raw_events "
            "WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version"
        )
        expected = _fold([_event(i) for i in range(1000)])

        async def raw_load(n: int) -> None:
            for _ in range(n):
                rows = await raw.fetch(select, stream, 0)
                assert _fold([DECODE(r[6]) for r in rows]) == expected

        async def dockyard_load(n: int) -> None:
            for _ in range(n):
                async with database.unit_of_work() as uow:
                    events = await SqlEventStore(uow, SERIALIZER).read_stream(stream)
                folded = _fold([e.data for e in events])  # type: ignore[misc]
                assert folded == expected

        load = [
            Contender("asyncpg SELECT + decode", raw_load, "same columns, data decoded"),
            Contender("dockyard", dockyard_load, "uow + read_stream + fold"),
        ]
        if es is not None:
            es.prepare_long(1000)
            load.append(Contender("eventsourcing 9.5", es.load, "repository.get"))
        results.append(
            (
                Scenario(
                    "PostgreSQL: load a 1,000-event stream and fold it",
                    "asyncpg SELECT + decode",
                    "dockyard ≤ 5 ms",
                ),
                await run_async(load, n=10, rounds=ROUNDS),
            )
        )
    finally:
        if es is not None:
            es.close()
        await raw.close()
        await database.dispose()
        await admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        await admin.close()


class _EventsourcingApp:
    """The eventsourcing library's application on PostgreSQL, if it imports."""

    def __init__(self, app: Any, aggregate: type) -> None:
        self.app, self.aggregate = app, aggregate
        self.long_id: Any = None

    @classmethod
    def start(cls, schema: str) -> _EventsourcingApp | None:
        try:
            from eventsourcing.application import Application
            from eventsourcing.domain import Aggregate, event
        except ImportError:
            print("\n(eventsourcing is not installed: its rows are skipped)")
            return None

        class Account(Aggregate):
            def __init__(self) -> None:
                self.balance = 0

            @event("Deposited")
            def deposit(self, amount: int, note: str) -> None:
                self.balance += amount

        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": "test",
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": "5432",
            "POSTGRES_USER": "postgres",
            "POSTGRES_PASSWORD": "",
            "POSTGRES_SCHEMA": schema,
        }
        return cls(Application(env=env), Account)

    def append(self, n: int, size: int) -> None:
        for _ in range(n):
            account = self.aggregate()
            for i in range(size - 1):  # creating the aggregate is the first event
                account.deposit(i, "a deposit of a modest size")
            self.app.save(account)

    def prepare_long(self, size: int) -> None:
        account = self.aggregate()
        for i in range(size - 1):
            account.deposit(i, "a deposit of a modest size")
        self.app.save(account)
        self.long_id = account.id

    def load(self, n: int) -> None:
        for _ in range(n):
            self.app.repository.get(self.long_id)

    def close(self) -> None:
        self.app.close()


# ----------------------------------------------------------------------------------- SQLite


async def _sqlite(results: list[tuple[Scenario, list[Any]]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        database = Database(f"sqlite+aiosqlite:///{path}")
        await database.create_tables()
        raw = await aiosqlite.connect(path, isolation_level=None)
        try:
            await raw.execute("PRAGMA journal_mode=WAL")
            await raw.execute("PRAGMA synchronous=NORMAL")
            await raw.execute(
                "CREATE TABLE raw_events (global_position INTEGER PRIMARY KEY AUTOINCREMENT, "
                "event_id CHAR(32) NOT NULL UNIQUE, stream_id VARCHAR(255) NOT NULL, "
                "stream_version BIGINT NOT NULL, type_name VARCHAR(255) NOT NULL, "
                "schema_version INTEGER NOT NULL, data BLOB NOT NULL, correlation_id "
                "VARCHAR(255), causation_id VARCHAR(255), occurred_at DATETIME NOT NULL, "
                "recorded_at DATETIME NOT NULL, UNIQUE (stream_id, stream_version))"
            )
            positions, names = _Positions(), _streams("Account")
            insert = f"INSERT INTO raw_events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 11)})"

            def sqlite_rows(stream_id: str, count: int) -> list[tuple[Any, ...]]:
                return [
                    (r[0], r[1].hex, *r[2:9], r[9].isoformat(), r[10].isoformat())
                    for r in _rows(stream_id, 1, count, positions)
                ]

            async def raw_append(n: int, size: int) -> None:
                for _ in range(n):
                    rows = sqlite_rows(next(names), size)
                    await raw.execute("BEGIN IMMEDIATE")
                    await raw.executemany(insert, rows)
                    await raw.execute("COMMIT")

            async def dockyard_append(n: int, size: int) -> None:
                for _ in range(n):
                    events = [_event(i) for i in range(size)]
                    async with database.unit_of_work() as uow:
                        await SqlEventStore(uow, SERIALIZER).append(next(names), events, NO_STREAM)

            results.append(
                (
                    Scenario(
                        "SQLite: append 1 event in its own transaction",
                        "aiosqlite BEGIN/INSERT/COMMIT",
                        "dockyard ≥ 0.8× raw throughput (≤ 1.25× its time)",
                    ),
                    await run_async(
                        [
                            Contender("aiosqlite BEGIN/INSERT/COMMIT", lambda n: raw_append(n, 1)),
                            Contender("dockyard", lambda n: dockyard_append(n, 1)),
                        ],
                        n=40,
                        rounds=ROUNDS,
                    ),
                )
            )
            results.append(
                (
                    Scenario(
                        "SQLite: append 100 events in one transaction",
                        "aiosqlite executemany",
                        "dockyard ≥ 0.6× raw throughput (≤ 1.67× its time)",
                    ),
                    await run_async(
                        [
                            Contender("aiosqlite executemany", lambda n: raw_append(n, 100)),
                            Contender("dockyard", lambda n: dockyard_append(n, 100)),
                        ],
                        n=10,
                        rounds=ROUNDS,
                    ),
                )
            )
            stream = "Account-long"
            async with database.unit_of_work() as uow:
                await SqlEventStore(uow, SERIALIZER).append(
                    stream, [_event(i) for i in range(1000)], NO_STREAM
                )
            await raw.execute("BEGIN IMMEDIATE")
            await raw.executemany(insert, sqlite_rows(stream, 1000))
            await raw.execute("COMMIT")
            expected = _fold([_event(i) for i in range(1000)])

            async def raw_load(n: int) -> None:
                for _ in range(n):
                    rows = await raw.execute_fetchall(
                        f"SELECT {', '.join(COLUMNS)} FROM raw_events "
                        "WHERE stream_id = ? AND stream_version >= ? ORDER BY stream_version",
                        (stream, 0),
                    )
                    assert _fold([DECODE(r[6]) for r in rows]) == expected

            async def dockyard_load(n: int) -> None:
                for _ in range(n):
                    async with database.unit_of_work() as uow:
                        events = await SqlEventStore(uow, SERIALIZER).read_stream(stream)
                    assert _fold([e.data for e in events]) == expected  # type: ignore[misc]

            results.append(
                (
                    Scenario(
                        "SQLite: load a 1,000-event stream and fold it",
                        "aiosqlite SELECT + decode",
                        "dockyard ≤ 5 ms",
                    ),
                    await run_async(
                        [
                            Contender("aiosqlite SELECT + decode", raw_load),
                            Contender("dockyard", dockyard_load, "uow + read_stream + fold"),
                        ],
                        n=10,
                        rounds=ROUNDS,
                    ),
                )
            )
        finally:
            await raw.close()
            await database.dispose()


async def main() -> None:
    """Run every event store scenario and print one table per scenario."""
    results: list[tuple[Scenario, list[Any]]] = []
    if "postgresql" in DIALECTS:
        await _postgres(results)
    if "sqlite" in DIALECTS:
        await _sqlite(results)
    for scenario, rows in results:
        print_table(scenario, rows)
        if rows and len(rows[0].samples) > ROUNDS:  # single operations: their means too
            print_means(rows, scenario.baseline)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
