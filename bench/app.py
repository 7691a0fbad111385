"""The real app shape: what an app with SQL, an outbox and a projection pays where it uses none.

An app in production imports ``SqlModule`` (PostgreSQL), ``OutboxModule`` with
``SqlOutboxBackend`` and a route, and ``ProjectionsModule`` with a catch-up projection. Two
tables, each against the same floor as the bare scenarios, all in one process run:

1. ``send`` of a command whose handler has one scoped dependency and touches neither the
   database nor the outbox, new scope — Dishka alone (baseline), dockyard's bare app
   (``bench.messaging``'s), the app shape without a route (nothing reads message context:
   tracking off), the app shape with ``route(Deposited).to(...)`` (a routed event carries the
   ids of the command that caused it, so the app tracks context, but only for the message
   types whose handlers can reach the outbox, a publisher or the context: not for this
   command), and the bare app with ``MessagingSettings(track_context=True)``, which prices
   tracking alone.
2. PostgreSQL, append 1 event in its own transaction, in the app shape — raw asyncpg
   ``BEGIN; INSERT; COMMIT`` (baseline, as in ``bench.eventstore``), dockyard's own append
   statement sent by raw asyncpg the same way (the server's share of the gap: the stream row
   with its version check, the announcement and the sequence), a unit of work of the
   app's ``Database`` with ``SqlEventStore.append``, ``app.scope()`` + ``EventStore`` from
   the scope (the unit of work commits when the scope exits), the way a handler appends, and
   a unit of work on a ``Database`` with one listener on the engine's ``commit``: what every
   app with an outbox ran until the outbox stopped listening there (the pool path), and a unit
   of work on a ``Database`` of its own, in no app: the append without an outbox, which the
   issue asks the app shape to match. Run twice: with nobody listening, and with a connection
   that ``LISTEN``s on the events and outbox channels, as a deployed app's worker does (each
   ``NOTIFY`` then signals it). Each run prints two tables: blocks of 40 appends (medians of
   the blocks, the figure this bench has always printed), and the same contenders one append
   at a time, all of them once per round in a new order, so that every contender meets the
   same moments of the shared machine: medians of single appends and, below, their means.
   Blocks measured the same code 0.99-1.53x the baseline from run to run; the interleaved
   table keeps each row's share steady within a run (docs/event-store.md).

Run: ``python -m bench app`` (or ``make bench ARGS=app``). Needs PostgreSQL on 127.0.0.1:5432
(``DOCKYARD_BENCH_POSTGRES_DSN``); ``DOCKYARD_BENCH_ROUNDS`` (default 7) sets the rounds.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import sqlalchemy as sa

from bench._harness import Contender, Scenario, print_means, print_table, run_async
from bench.eventstore import COLUMNS, ENCODE, SERIALIZER, Deposited, _Positions, _rows
from bench.messaging import Add, AddHandler, BenchModule, Counter, _dishka, _loop
from dockyard import App, module, scoped
from dockyard.eventsourcing import NO_STREAM, EventStore, RecordedEvent
from dockyard.messaging import MessagingSettings
from dockyard.outbox import OutboxModule, route
from dockyard.projections import Projection, ProjectionsModule, handles
from dockyard.sql import Database, SqlEventStore, SqlModule, SqlOutboxBackend
from dockyard.sql._eventsourcing.append_postgres import _built
from dockyard.transport.memory import InMemoryTransport

DSN = os.environ.get("DOCKYARD_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
URL = DSN.replace("postgresql://", "postgresql+asyncpg://")
ROUNDS = int(os.environ.get("DOCKYARD_BENCH_ROUNDS", "7"))
SEND_N = 20_000
APPEND_N = 40
APPEND_SINGLES = 200  # single appends per contender per round of the interleaved table


class Balances(Projection):
    """A catch-up projection, so the app has a runner and its stores (not run here)."""

    name = "balances"

    def __init__(self) -> None:
        self.total = 0

    @handles
    async def deposited(self, event: Deposited, recorded: RecordedEvent) -> None:
        del recorded
        self.total += event.amount


def build_app(schema: str, *, routed: bool) -> App:
    """The app shape, on PostgreSQL in ``schema``; ``routed`` adds a route for ``Deposited``."""
    sql = SqlModule.register(
        URL, serializer=SERIALIZER, connect_args={"server_settings": {"search_path": schema}}
    )
    outbox = OutboxModule.register(
        transport=InMemoryTransport(),
        backend=SqlOutboxBackend(),
        routes=[route(Deposited).to("deposits")] if routed else [],
    )
    projections = ProjectionsModule.register(projections=[Balances], imports=[sql])

    @module(providers=[scoped(Counter)], handlers=[AddHandler], imports=[sql, outbox, projections])
    class Shop: ...

    return App.build(Shop)


async def bench_send(schema: str) -> None:
    container = _dishka()
    bare = App.build(BenchModule)
    tracked = App.build(BenchModule, messaging=MessagingSettings(track_context=True))
    unrouted = build_app(schema, routed=False)
    routed = build_app(schema, routed=True)
    apps = (bare, tracked, unrouted, routed)
    for app in apps:
        await app.start()

    async def dishka_send(n: int) -> None:
        for _ in range(n):
            async with container() as scope:
                handler = await scope.get(AddHandler)
                await handler.handle(Add(amount=1))

    def send(app: App) -> Any:
        return _loop(lambda: app.send(Add(amount=1)))

    contenders = [
        Contender("dishka alone", dishka_send, "open scope + get handler + handle"),
        Contender("dockyard, bare app", send(bare), "bench.messaging's app"),
        Contender("dockyard, app shape", send(unrouted), "SQL + outbox + projection, no route"),
        Contender("dockyard, app shape, routed", send(routed), "+ route(Deposited)"),
        Contender("dockyard, bare, tracked", send(tracked), "track_context=True"),
    ]
    try:
        results = await run_async(contenders, n=SEND_N, rounds=ROUNDS)
    finally:
        for app in apps:
            await app.stop()
        await container.close()
    print_table(
        Scenario(
            "app shape: send a command that touches neither SQL nor the outbox, new scope",
            baseline="dishka alone",
            target="dockyard ≤ 1.25× dishka alone, in the app shape as in a bare app",
        ),
        results,
    )
    flags = [_tracked(app) for app in (unrouted, routed, tracked)]
    print(f"Add tracked: app shape {flags[0]}, routed {flags[1]}, bare forced {flags[2]}")


def _ignore(*_args: object) -> None:
    """A listener's callback: the worker would read its table; the bench needs no more."""


def _tracked(app: App) -> bool:
    info = app.messages.get(Add)
    return info is not None and info.tracked


async def bench_append(schema: str, *, listening: bool) -> None:
    app = build_app(schema, routed=True)
    await app.start()
    database = await app.get(Database)
    # the scope's row runs in an app of its own: every row of the tables has its own
    # connection, so none ever follows itself on a connection another row just used
    scoped_app = build_app(schema, routed=True)
    await scoped_app.start()
    raw = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    # the statement's own connection in the interleaved table: no row there shares one
    raw2 = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    # A deployed app has a worker: its relay and catch-up runner LISTEN for commits, and each
    # NOTIFY then also signals them (docs/design/commit-notices.md).
    listener = await asyncpg.connect(DSN) if listening else None
    if listener is not None:
        for channel in ("dockyard_events", "dockyard_outbox"):
            await listener.add_listener(channel, _ignore)
    table = "raw_events_heard" if listening else "raw_events"  # one each: positions restart
    await raw.execute(f"CREATE TABLE {table} (LIKE dockyard_events INCLUDING ALL)")
    insert = (
        f"INSERT INTO {table} ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join(f'${i}' for i in range(1, 12))})"
    )
    counter = iter(range(10**8 if listening else 1, 10**9))  # stream ids of their own
    positions = _Positions()
    event = Deposited(1, "a deposit of a modest size")

    async def raw_append(n: int) -> None:
        for _ in range(n):
            (row,) = _rows(f"Raw-{next(counter)}", 1, 1, positions)
            async with raw.transaction():
                await raw.execute(insert, *row)

    # The same statement dockyard sends (stream row, version check, announcement, sequence),
    # on the raw connection: what the store's design costs the server, without dockyard's client.
    statement_sql, names, constants = _built(True, "create", "first")[1]  # noqa: FBT003

    def statement_on(connection: asyncpg.Connection) -> Any:
        async def statement_append(n: int) -> None:
            for _ in range(n):
                await statement_once(connection)

        return statement_append

    async def statement_once(connection: asyncpg.Connection) -> None:
        now = datetime.now(UTC)
        given = constants | {
            "sid": f"Stmt-{next(counter)}",
            "n": 1,
            "recorded_at": now,
            "event_id": uuid.uuid4(),
            "type_name": "Deposited",
            "schema_version": 1,
            "data": ENCODE(event),
            "correlation_id": None,
            "causation_id": None,
            "occurred_at": now,
        }
        async with connection.transaction():
            await connection.fetch(statement_sql, *[given[name] for name in names])

    async def uow_append(n: int) -> None:
        for _ in range(n):
            async with database.unit_of_work() as uow:
                store = SqlEventStore(uow, SERIALIZER)
                await store.append(f"Uow-{next(counter)}", [event], NO_STREAM)

    async def scope_append(n: int) -> None:
        for _ in range(n):
            async with scoped_app.scope() as scope:
                store = await scope.get(EventStore)
                await store.append(f"Scope-{next(counter)}", [event], NO_STREAM)

    # what every app with an outbox ran before: its engine listeners turned the driver path off
    listened = Database(URL, connect_args={"server_settings": {"search_path": schema}})
    sa.event.listen(listened.engine.sync_engine, "commit", lambda _: None)

    alone = Database(URL, connect_args={"server_settings": {"search_path": schema}})

    async def alone_append(n: int) -> None:
        for _ in range(n):
            async with alone.unit_of_work() as uow:
                store = SqlEventStore(uow, SERIALIZER)
                await store.append(f"Alone-{next(counter)}", [event], NO_STREAM)

    async def listened_append(n: int) -> None:
        for _ in range(n):
            async with listened.unit_of_work() as uow:
                store = SqlEventStore(uow, SERIALIZER)
                await store.append(f"Pool-{next(counter)}", [event], NO_STREAM)

    contenders = [
        Contender("asyncpg BEGIN/INSERT/COMMIT", raw_append),
        Contender("asyncpg, dockyard's statement", statement_on(raw), "BEGIN/append/COMMIT"),
        Contender("dockyard, unit of work", uow_append, "the app's Database"),
        Contender("dockyard, app.scope()", scope_append, "EventStore from the scope"),
        Contender("dockyard, engine listener", listened_append, "pool path, as before"),
        Contender("dockyard, no outbox", alone_append, "a Database in no app"),
    ]
    # One append per sample, every contender once per round in a new order: each meets the
    # same moments of the machine (docs/event-store.md, "One append at a time").
    interleaved = [
        contenders[0],
        Contender(contenders[1].name, statement_on(raw2), "its own connection"),
        *(c for c in contenders[2:] if c.run is not listened_append),
    ]
    try:
        results = await run_async(contenders, n=APPEND_N, rounds=ROUNDS)
        singles = await run_async(interleaved, n=1, rounds=ROUNDS * APPEND_SINGLES)
        fast = database.connections.fast_path(), listened.connections.fast_path()
    finally:
        if listener is not None:
            await listener.close()
        await raw.close()
        await raw2.close()
        await listened.dispose()
        await alone.dispose()
        await app.stop()
        await scoped_app.stop()
    print_table(
        Scenario(
            "app shape, PostgreSQL: append 1 event in its own transaction"
            + (", a worker's LISTEN on the server" if listening else ", nobody listening"),
            baseline="asyncpg BEGIN/INSERT/COMMIT",
            target="dockyard ≥ 0.8× raw asyncpg throughput (≤ 1.25× its time)",
        ),
        results,
    )
    title = "app shape, PostgreSQL: append 1 event, one append at a time, interleaved"
    print_table(
        Scenario(
            title + (", a worker's LISTEN" if listening else ", nobody listening"),
            baseline="asyncpg BEGIN/INSERT/COMMIT",
            target="dockyard ≤ 1.25× raw asyncpg's time (median of single appends)",
        ),
        singles,
    )
    print_means(singles, "asyncpg BEGIN/INSERT/COMMIT")
    print(f"unit of work on the driver path: app {fast[0]}, with a listener {fast[1]}")


async def main() -> None:
    try:
        admin = await asyncpg.connect(DSN)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"\n## app shape: PostgreSQL not reachable at {DSN} ({exc}); skipped")
        return
    schema = f"dockyard_bench_{uuid.uuid4().hex[:8]}"
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        database = Database(URL, connect_args={"server_settings": {"search_path": schema}})
        await database.create_tables()
        await database.dispose()
        await bench_send(schema)
        await bench_append(schema, listening=False)
        await bench_append(schema, listening=True)
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
