"""The outbox on SQL: ``SqlOutboxWriter`` (in the unit of work), ``SqlOutboxStore`` (relays and
dead letters), ``SqlOutboxBackend`` (both, for ``OutboxModule.register(backend=...)``).

The claim is described in ``docs/design/outbox-relay.md``: on PostgreSQL one statement takes
each key's advisory lock before ``FOR UPDATE SKIP LOCKED`` takes the row; on SQLite the
transaction holds the one write lock (``BEGIN IMMEDIATE``), so relays take turns. Scheduled
messages wait in a table of their own until the relay promotes them into the outbox
(``docs/design/scheduled-messages.md``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Engine, bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.di import ProviderSpec, scoped, singleton
from dockyard.modules import ModuleLike
from dockyard.outbox import (
    Cancellation,
    ClaimedBatch,
    Inbox,
    OutboxMessage,
    OutboxStatus,
    OutboxStore,
    Promotion,
)
from dockyard.outbox import OutboxWriter as OutboxWriterPort
from dockyard.outbox._destinations import Destinations
from dockyard.outbox._signal import Signal
from dockyard.sql._database import Database
from dockyard.sql._errors import unavailable_as_store_error
from dockyard.sql._listen import PostgresListener
from dockyard.sql._module import SqlModule
from dockyard.sql._outbox.inbox import SqlInbox
from dockyard.sql._outbox.tables import (
    OUTBOX_CHANNEL,
    inbox_table,
    outbox_scheduled_table,
    outbox_table,
)
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["SqlOutboxBackend", "SqlOutboxStore", "SqlOutboxWriter"]

logger = logging.getLogger("dockyard.outbox")

_T = outbox_table.name
_PURGE_BATCH = 10_000
_PURGE_HANDLED = {
    "postgresql": text(
        f"DELETE FROM {inbox_table.name} WHERE ctid = ANY(ARRAY("  # noqa: S608
        f"SELECT ctid FROM {inbox_table.name} WHERE handled_at < :before LIMIT :batch))"
    ),
    "sqlite": text(
        f"DELETE FROM {inbox_table.name} WHERE rowid IN ("  # noqa: S608
        f"SELECT rowid FROM {inbox_table.name} WHERE handled_at < :before LIMIT :batch)"
    ),
}
# The first key of the two-key advisory locks a claim takes: the outbox table's own oid, as
# this session resolves the name (a constant of the plan), so the relays of two outbox tables
# in one database (two schemas: two apps, or two tests) never hold back each other's keys.
_LOCK_NAMESPACE = f"CAST(CAST('{_T}' AS regclass) AS oid)::integer"
_COLUMNS = (
    "position, message_id, destination, type_name, schema_version, payload, headers, "
    "partition_key, created_at, attempts, next_attempt_at, status, last_error"
)
# A message is held back while an earlier message of its key waits for a retry.
# ({b_where}: with several transports, only a retry of this relay's transport holds it back.)
_NOT_BEHIND_A_RETRY = """NOT EXISTS (
    SELECT 1 FROM {table} AS b
     WHERE b.status = 'pending' AND b.attempts > 0 AND b.partition_key = o.partition_key
       AND b.position < o.position AND b.next_attempt_at > :now{b_where})"""
# The key locks are taken in a step of their own, over a LIMITed list of candidates, so that
# no plan can evaluate them on every pending row before a sort and a LIMIT (a table without
# statistics gets a sequential scan: the claim then locked the keys of the whole backlog).
# `keyed` reads the materialized candidates in position order and stops after `limit` rows
# it got the key of; rows are locked only for those (docs/design/outbox-relay.md).
# {o_where} and {key}: a relay of one of several transports claims only its destinations and
# takes its keys' locks in a scope of its own (``Destinations``; "" and the bare key else).
_CLAIM_TEMPLATE = {
    "postgresql": """WITH candidates AS MATERIALIZED (
            SELECT o.position, o.partition_key FROM {table} AS o
             WHERE o.status = 'pending' AND o.next_attempt_at <= :now AND {behind}{o_where}
             ORDER BY o.position LIMIT :window
        ), keyed AS MATERIALIZED (
            SELECT c.position FROM candidates AS c
             WHERE c.partition_key IS NULL
                OR pg_try_advisory_xact_lock({namespace}, hashtext({key}))
             LIMIT :limit
        )
        SELECT {columns} FROM {table} AS o
         WHERE o.position IN (SELECT k.position FROM keyed AS k) AND o.status = 'pending'
         ORDER BY o.position
         FOR UPDATE OF o SKIP LOCKED""",
    "sqlite": """SELECT {columns} FROM {table} AS o
         WHERE o.status = 'pending' AND o.next_attempt_at <= :now AND {behind}{o_where}
         ORDER BY o.position LIMIT :limit""",
}
# Holding a key's lock does not mean holding every earlier row of that key: a scan may pass a
# row while another relay holds its key, get the key after that relay commits, and lock a later
# row. So, once the claim holds its keys, a fresh snapshot finds, per key, the first pending row
# the batch skipped; the batch keeps only what comes before it (PostgreSQL only).
_FIRST_SKIPPED_TEMPLATE = """SELECT partition_key, min(position) FROM {table}
     WHERE status = 'pending' AND partition_key = ANY(:keys) AND position < :last
       AND NOT (position = ANY(:positions)){where}
     GROUP BY partition_key"""


def _destination_condition(alias: str, destinations: Destinations | None) -> str:
    """`` AND (<alias>destination LIKE :dest0 OR ...)`` (or ``AND NOT``); ``""`` for all."""
    if destinations is None or not destinations.prefixes:
        return ""
    tests = " OR ".join(
        f"{alias}destination LIKE :dest{n}" for n in range(len(destinations.prefixes))
    )
    return f" AND {'NOT ' if destinations.exclude else ''}({tests})"


def _claim_statements(dialect: str, destinations: Destinations | None) -> tuple[Any, Any]:
    """The claim and the first-skipped statements for ``destinations`` (cached by shape)."""
    shape = (
        dialect,
        None if destinations is None else len(destinations.prefixes),
        destinations is not None and destinations.exclude,
        destinations is not None and bool(destinations.scope),
    )
    found = _STATEMENTS.get(shape)
    if found is None:
        scoped = destinations is not None and bool(destinations.scope)
        behind = _NOT_BEHIND_A_RETRY.format(
            table=_T, b_where=_destination_condition("b.", destinations)
        )
        claim = _CLAIM_TEMPLATE[dialect].format(
            table=_T,
            behind=behind,
            o_where=_destination_condition("o.", destinations),
            namespace=_LOCK_NAMESPACE,
            key="CAST(:scope AS text) || c.partition_key" if scoped else "c.partition_key",
            columns=_COLUMNS,
        )
        skipped = _FIRST_SKIPPED_TEMPLATE.format(
            table=_T, where=_destination_condition("", destinations)
        )
        found = _STATEMENTS[shape] = (text(claim), text(skipped))
    return found


def _destination_params(destinations: Destinations | None) -> dict[str, Any]:
    if destinations is None:
        return {}
    params: dict[str, Any] = {f"dest{n}": f"{p}%" for n, p in enumerate(destinations.prefixes)}
    if destinations.scope:
        params["scope"] = destinations.scope + "/"
    return params


_STATEMENTS: dict[tuple[object, ...], tuple[Any, Any]] = {}
_CANDIDATES = 4
"""Rows a PostgreSQL claim looks at per row it may take: the rows of batches in flight (other
relays', or this relay's pipeline) come first in position order, and their keys are taken."""
_IN_POSITIONS = {
    "postgresql": "position = ANY(:positions)",
    "sqlite": "position IN (SELECT value FROM json_each(:positions))",
}

# -- scheduled messages (docs/design/scheduled-messages.md) --------------------------------

_S = outbox_scheduled_table.name
_SCHEDULED_COLUMNS = (
    "message_id, destination, type_name, schema_version, payload, headers, partition_key, "
    "created_at"
)
_PROMOTED = f"{_SCHEDULED_COLUMNS}, attempts, next_attempt_at, status"
_AS_PROMOTED = f"{_SCHEDULED_COLUMNS}, 0, deliver_at, 'pending'"
# One statement. Row locks make each promoted once, whatever the number of relays; a row a
# cancelling scope is deleting is locked too, so it is skipped until that scope ends. The
# outbox assigns the new positions in due order (then scheduling order): the order within a
# key. So that this holds across relays too, one promotes at a time (`lock`; per schema: the
# key is the table's oid, and the event log's one-key locks carry a tag in their top bits, so
# they never meet it); the others take nothing, and hear of the next due time after `now`
# (the promoter goes on while its batches are full). The lock is part of the rows' condition,
# so rows are locked only if it was taken, whatever the plan. Then: how many were taken, how
# many moved (not dropped as duplicates), and the next due time of what is left.
# The commit does not wait for the disk (synchronous_commit off for this transaction only): a
# promotion a crash loses is only undone — the rows are scheduled again and promoted again —
# and the WAL is flushed in order, so the synchronous commit of a claim that marks a promoted
# row delivered makes its promotion durable too. It halved the lateness (bench/scheduled.py).
_PROMOTE_POSTGRES = text(
    f"""WITH lock AS MATERIALIZED (
        SELECT pg_try_advisory_xact_lock('{_S}'::regclass::oid::bigint) AS got,
               set_config('synchronous_commit', 'off', true) AS quick
    ), due AS (
        DELETE FROM {_S} AS s
         WHERE s.position IN (
            SELECT position FROM {_S} WHERE deliver_at <= :now AND (SELECT got FROM lock)
             ORDER BY deliver_at, position LIMIT :limit
             FOR UPDATE SKIP LOCKED)
        RETURNING s.*
    ), moved AS (
        INSERT INTO {_T} ({_PROMOTED})
        SELECT {_AS_PROMOTED} FROM due ORDER BY deliver_at, position
        ON CONFLICT (message_id) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM moved),
           (SELECT min(deliver_at) FROM {_S}
             WHERE position NOT IN (SELECT position FROM due)
               AND (deliver_at > :now OR (SELECT got FROM lock)))"""  # noqa: S608
)
_DUE_SQLITE = text(
    f"SELECT position FROM {_S} WHERE deliver_at <= :now "  # noqa: S608
    "ORDER BY deliver_at, position LIMIT :limit"
)
_PROMOTE_SQLITE = text(
    f"""INSERT INTO {_T} ({_PROMOTED})
    SELECT {_AS_PROMOTED} FROM {_S} WHERE position IN (SELECT value FROM json_each(:positions))
     ORDER BY deliver_at, position
    ON CONFLICT (message_id) DO NOTHING"""  # noqa: S608
)
_DROP_DUE_SQLITE = text(
    f"DELETE FROM {_S} WHERE position IN (SELECT value FROM json_each(:positions))"  # noqa: S608
)
_NEXT_DUE = text(
    f"""SELECT min(t) FROM (
        SELECT min(next_attempt_at) AS t FROM {_T} WHERE status = 'pending'
        UNION ALL SELECT min(deliver_at) FROM {_S}) AS d"""  # noqa: S608
)
# In the outbox's columns (_COLUMNS), so that one function reads both.
_NEXT_SCHEDULED = text(f"SELECT min(deliver_at) FROM {_S}")  # noqa: S608
_NEXT_RETRY = text(
    f"SELECT min(next_attempt_at) FROM {_T} WHERE status = 'pending'"  # noqa: S608
)
_HAS_SCHEDULED_TABLE = {
    "postgresql": text("SELECT to_regclass(:name)"),
    "sqlite": text("SELECT name FROM sqlite_master WHERE type = 'table' AND name = :name"),
}
_RECHECK = 30.0
_NO_SCHEDULED_TABLE = (
    "the table %s is missing: this database was made by an earlier dockyard. The outbox "
    "works on without scheduled messages; add the table (`dockyard db upgrade APP`, or an "
    "Alembic revision made with dockyard.sql.alembic: docs/migrations.md) to schedule messages"
)
_GET_SCHEDULED = text(
    f"SELECT position, {_SCHEDULED_COLUMNS}, 0, deliver_at, 'scheduled', NULL "  # noqa: S608
    f"FROM {_S} WHERE message_id = :id"
)
# Cancelling: the scheduled table first. A promotion that commits in between is seen by the
# second statement (READ COMMITTED: a fresh snapshot per statement); the other order could miss
# the row in both. A row a relay's batch holds is waited for, then re-checked.
_CANCEL_SCHEDULED = text(f"DELETE FROM {_S} WHERE message_id = :id")  # noqa: S608
_CANCEL_WAITING = text(
    f"DELETE FROM {_T} WHERE message_id = :id AND status IN ('pending', 'dead')"  # noqa: S608
)
_STATUS = text(f"SELECT status FROM {_T} WHERE message_id = :id")  # noqa: S608
_DUPLICATES = (
    "%d scheduled messages were dropped when due: a message with the same id was already in "
    "the outbox (the same id is the same message)"
)

_encode_headers = msgspec.json.Encoder().encode
_decode_headers = msgspec.json.Decoder(dict[str, str]).decode


def _positions(dialect: str, positions: Sequence[int]) -> Any:
    return list(positions) if dialect == "postgresql" else msgspec.json.encode(positions).decode()


# -- writing ------------------------------------------------------------------------------


def _row(message: OutboxMessage) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "destination": message.destination,
        "type_name": message.type_name,
        "schema_version": message.schema_version,
        "payload": message.payload,
        "headers": _encode_headers(message.headers).decode(),
        "partition_key": message.partition_key,
        "created_at": message.created_at,
        "attempts": message.attempts,
        "next_attempt_at": message.next_attempt_at,
        "status": str(message.status),
        "last_error": message.last_error,
    }


def _insert(table: str, columns: Sequence[str]) -> Any:
    """``INSERT`` of one row of ``columns`` as ``text()``: the driver path runs it as it is."""
    names = ", ".join(columns)
    values = ", ".join(f":{name}" for name in columns)
    return text(f"INSERT INTO {table} ({names}) VALUES ({values})")  # noqa: S608 - names are ours; values are bound


_ADD = _insert(
    _T,
    [*_SCHEDULED_COLUMNS.split(", "), "attempts", "next_attempt_at", "status", "last_error"],
)
_ADD_SCHEDULED = _insert(_S, [*_SCHEDULED_COLUMNS.split(", "), "deliver_at"])


def _scheduled_row(message: OutboxMessage) -> dict[str, Any]:
    row = _row(message)
    kept = {name: row[name] for name in _SCHEDULED_COLUMNS.split(", ")}
    return kept | {"deliver_at": message.next_attempt_at}


class SqlOutboxWriter(OutboxWriterPort):
    """Writes outbox rows on the scope's unit of work: they commit with everything else, and
    relays of this process are woken once they have."""

    __slots__ = ("_uow",)

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def add(self, messages: Sequence[OutboxMessage], /) -> None:
        if not messages:
            return
        uow = self._uow
        scheduled = [m for m in messages if m.status is OutboxStatus.SCHEDULED]
        pending = [m for m in messages if m.status is not OutboxStatus.SCHEDULED]
        with unavailable_as_store_error("write to the outbox"):
            if pending:
                await uow.execute_many(_ADD, [_row(m) for m in pending])
            if scheduled:
                await uow.execute_many(_ADD_SCHEDULED, [_scheduled_row(m) for m in scheduled])
        database = uow.database
        uow.after_commit(_signal_for(database).notify)
        if uow.dialect == "postgresql":  # relays of other processes (sql/_notices.py)
            uow.after_commit(database.notices.callback(OUTBOX_CHANNEL))

    async def cancel(self, message_id: str, /) -> Cancellation:
        connection = self._uow.connection
        params = {"id": message_id}
        with unavailable_as_store_error("cancel an outbox message"):
            for statement in (_CANCEL_SCHEDULED, _CANCEL_WAITING):
                if (await connection.execute(statement, params)).rowcount:
                    return Cancellation.CANCELLED
            status = (await connection.execute(_STATUS, params)).scalar()
        if status == OutboxStatus.DELIVERED:
            return Cancellation.ALREADY_PUBLISHED
        return Cancellation.NOT_FOUND


# -- in-process wake-up: one signal per engine, raised after a unit of work that wrote commits
# (a callback of that unit of work: never a listener on the engine, which would also turn the
# unit of work's driver path off, docs/design/unit-of-work.md)

_signals: weakref.WeakKeyDictionary[Engine, Signal] = weakref.WeakKeyDictionary()


def _signal_for(database: Database) -> Signal:
    engine = database.engine.sync_engine
    found = _signals.get(engine)
    if found is None:
        found = _signals[engine] = Signal()
    return found


# -- relays and dead letters ----------------------------------------------------------------


def _message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        message_id=row[1],
        destination=row[2],
        type_name=row[3],
        schema_version=row[4],
        payload=bytes(row[5]),
        headers=_decode_headers(row[6]),
        partition_key=row[7],
        created_at=row[8],
        attempts=row[9],
        next_attempt_at=row[10],
        status=OutboxStatus(row[11]),
        last_error=row[12],
    )


class _SqlBatch(ClaimedBatch):
    __slots__ = ("_connection", "_dialect", "_messages", "_positions")

    def __init__(
        self,
        connection: AsyncConnection,
        dialect: str,
        messages: list[OutboxMessage],
        positions: dict[str, int],
    ) -> None:
        self._connection = connection
        self._dialect = dialect
        self._messages = messages
        self._positions = positions

    @property
    def messages(self) -> Sequence[OutboxMessage]:
        return self._messages

    async def delivered(self, message_ids: Sequence[str], now: float, /) -> None:
        if not message_ids:
            return
        positions = [self._positions[m] for m in message_ids]
        statement = text(
            f"UPDATE {_T} SET status = 'delivered', delivered_at = :now "  # noqa: S608
            f"WHERE {_IN_POSITIONS[self._dialect]}"
        )
        with unavailable_as_store_error("mark outbox messages delivered"):
            await self._connection.execute(
                statement, {"now": now, "positions": _positions(self._dialect, positions)}
            )

    async def failed(
        self, message_id: str, error: str, attempts: int, next_attempt_at: float, /
    ) -> None:
        await self._set(
            message_id,
            {"attempts": attempts, "last_error": error, "next_attempt_at": next_attempt_at},
        )

    async def dead(self, message_id: str, error: str, attempts: int, /) -> None:
        await self._set(message_id, {"attempts": attempts, "last_error": error, "status": "dead"})

    async def _set(self, message_id: str, values: dict[str, Any]) -> None:
        statement = (
            outbox_table.update()
            .where(outbox_table.c.position == self._positions[message_id])
            .values(values)
        )
        with unavailable_as_store_error("record a failed outbox delivery"):
            await self._connection.execute(statement)


class SqlOutboxStore(OutboxStore):
    """The ``OutboxStore`` on ``dockyard_outbox`` (PostgreSQL or SQLite); one per app."""

    __slots__ = ("_listener", "_scheduled_checked", "_scheduled_table", "_signal", "database")

    def __init__(self, database: Database) -> None:
        self.database = database
        self._signal = _signal_for(database)
        self._listener = (
            PostgresListener(database, OUTBOX_CHANNEL, logger)
            if database.dialect == "postgresql"
            else None
        )
        self._scheduled_table = False  # known to exist
        self._scheduled_checked = -math.inf  # when it was last found missing (monotonic)

    async def _scheduling(self) -> bool:
        """Whether ``dockyard_outbox_scheduled`` exists. A database made by an earlier dockyard
        and not migrated yet lacks it: the outbox works on, without scheduled messages, and
        this looks again every ``_RECHECK`` seconds (docs/design/scheduled-messages.md)."""
        if self._scheduled_table:
            return True
        now = time.monotonic()
        if now - self._scheduled_checked < _RECHECK:
            return False
        statement = _HAS_SCHEDULED_TABLE[self.database.dialect]
        async with self._connection("look for the scheduled messages' table") as connection:
            found = (await connection.execute(statement, {"name": _S})).scalar() is not None
        if found:
            self._scheduled_table = True
        elif self._scheduled_checked < now:  # (concurrent callers may both have looked)
            if self._scheduled_checked == -math.inf:
                logger.warning(_NO_SCHEDULED_TABLE, _S)
            self._scheduled_checked = now
        return found

    @property
    def hears_every_commit(self) -> bool:
        return self._listener is not None

    @property
    def claims_overlap(self) -> bool:
        # PostgreSQL: row and key locks, so claims take disjoint keys; SQLite: one writer,
        # a second claim would wait for the first's commit (BEGIN IMMEDIATE).
        return self._listener is not None

    def claim(self, limit: int, now: float, /) -> AbstractAsyncContextManager[ClaimedBatch]:
        return self._claim(limit, now, None)

    def claim_destinations(
        self, destinations: Destinations, limit: int, now: float, /
    ) -> AbstractAsyncContextManager[ClaimedBatch]:
        return self._claim(limit, now, destinations)

    @asynccontextmanager
    async def _claim(
        self, limit: int, now: float, destinations: Destinations | None
    ) -> AsyncIterator[ClaimedBatch]:
        dialect = self.database.dialect
        async with self.database.unit_of_work() as uow:
            connection = uow.connection
            with unavailable_as_store_error("claim outbox messages"):
                params = {"now": now, "limit": limit, "window": limit * _CANDIDATES}
                params |= _destination_params(destinations)
                statement, skipped = _claim_statements(dialect, destinations)
                result = await connection.execute(statement, params)
                rows = result.all()
                positions = {row[1]: row[0] for row in rows}
                messages = [_message(row) for row in rows]
                if dialect == "postgresql":
                    messages = await _drop_blocked(connection, messages, positions, skipped, params)
            yield _SqlBatch(connection, dialect, messages, positions)

    @asynccontextmanager
    async def _listen(self) -> AsyncIterator[asyncio.Event]:
        async with self._signal.listen() as wake:
            if self._listener is None:
                yield wake
            else:
                async with self._listener.listen(wake):
                    yield wake

    def listen(self) -> AbstractAsyncContextManager[asyncio.Event]:
        return self._listen()

    async def next_due(self) -> float | None:
        statement = _NEXT_DUE if await self._scheduling() else _NEXT_RETRY
        return await self._scalar(statement, "read the next due outbox message")  # type: ignore[no-any-return]

    async def promote(self, now: float, limit: int, /) -> Promotion:
        if not await self._scheduling():
            return Promotion(0, None)
        params: dict[str, Any] = {"now": now, "limit": limit}
        async with self._connection("promote due scheduled messages") as connection:
            if self.database.dialect == "postgresql":
                taken, moved, next_due = (await connection.execute(_PROMOTE_POSTGRES, params)).one()
            else:  # one writer at a time (BEGIN IMMEDIATE): no lock to take
                due = list((await connection.execute(_DUE_SQLITE, params)).scalars())
                moved = 0
                if due:
                    positions = {"positions": _positions("sqlite", due)}
                    moved = (await connection.execute(_PROMOTE_SQLITE, positions)).rowcount
                    await connection.execute(_DROP_DUE_SQLITE, positions)
                taken = len(due)
                next_due = (await connection.execute(_NEXT_SCHEDULED)).scalar()
        if moved < taken:
            logger.warning(_DUPLICATES, taken - moved)
        return Promotion(int(taken), next_due)

    async def purge_delivered(self, before: float, /) -> int:
        statement = outbox_table.delete().where(
            outbox_table.c.status == "delivered", outbox_table.c.delivered_at < before
        )
        async with self._connection("delete delivered outbox messages") as connection:
            result = await connection.execute(statement)
            return int(result.rowcount)

    async def purge_handled(self, before: float, /) -> int:
        # In batches, each its own transaction: a first purge of a big inbox must not hold
        # one transaction (and its locks, and the WAL) for minutes.
        statement = _PURGE_HANDLED[self.database.dialect]
        purged = 0
        while True:
            async with self._connection("delete old inbox records") as connection:
                result = await connection.execute(
                    statement, {"before": before, "batch": _PURGE_BATCH}
                )
                deleted = int(result.rowcount)
            purged += deleted
            if deleted < _PURGE_BATCH:
                return purged

    async def get(self, message_id: str, /) -> OutboxMessage | None:
        statement = text(f"SELECT {_COLUMNS} FROM {_T} WHERE message_id = :id")  # noqa: S608
        async with self._connection("read an outbox message") as connection:
            row = (await connection.execute(statement, {"id": message_id})).first()
            if row is not None:
                return _message(row)
        if not await self._scheduling():
            return None
        async with self._connection("read a scheduled message") as connection:
            row = (await connection.execute(_GET_SCHEDULED, {"id": message_id})).first()
        return None if row is None else _message(row)

    async def counts(self) -> Mapping[OutboxStatus, int]:
        statement = select(outbox_table.c.status, func.count()).group_by(outbox_table.c.status)
        scheduled = select(func.count()).select_from(outbox_scheduled_table)
        scheduling = await self._scheduling()
        async with self._connection("count outbox messages") as connection:
            rows = (await connection.execute(statement)).all()
            waiting = (await connection.execute(scheduled)).scalar_one() if scheduling else 0
        found = dict.fromkeys(OutboxStatus, 0)
        found.update({OutboxStatus(status): count for status, count in rows})
        found[OutboxStatus.SCHEDULED] = waiting
        return found

    async def oldest_pending(self) -> float | None:
        statement = select(func.min(outbox_table.c.created_at)).where(
            outbox_table.c.status == OutboxStatus.PENDING.value
        )
        async with self._connection("read the oldest pending outbox message") as connection:
            oldest = (await connection.execute(statement)).scalar_one()
        return float(oldest) if oldest is not None else None

    async def counts_by_destination(self) -> Mapping[str, Mapping[OutboxStatus, int]]:
        table, waiting = outbox_table, outbox_scheduled_table
        statement = select(table.c.destination, table.c.status, func.count()).group_by(
            table.c.destination, table.c.status
        )
        scheduled = select(waiting.c.destination, func.count()).group_by(waiting.c.destination)
        scheduling = await self._scheduling()
        async with self._connection("count outbox messages by destination") as connection:
            rows = [tuple(row) for row in (await connection.execute(statement)).all()]
            if scheduling:
                rows += [
                    (destination, OutboxStatus.SCHEDULED.value, count)
                    for destination, count in (await connection.execute(scheduled)).all()
                ]
        found: dict[str, dict[OutboxStatus, int]] = {}
        for destination, status, count in rows:
            counts = found.setdefault(destination, dict.fromkeys(OutboxStatus, 0))
            counts[OutboxStatus(status)] += count
        return {destination: found[destination] for destination in sorted(found)}

    async def dead_letters(
        self,
        *,
        limit: int = 100,
        after: str | None = None,
        destination: str | None = None,
        type_name: str | None = None,
        since: float | None = None,
        error: str | None = None,
    ) -> list[OutboxMessage]:
        table = outbox_table
        conditions = _dead_letter_conditions(destination, type_name, since, error)
        if after is not None:
            earlier = select(table.c.position).where(table.c.message_id == after)
            conditions.append(table.c.position > earlier.scalar_subquery())
        columns = [table.c[name] for name in _COLUMNS.split(", ")]
        statement = select(*columns).where(*conditions).order_by(table.c.position).limit(limit)
        async with self._connection("list dead letters") as connection:
            rows = (await connection.execute(statement)).all()
        return [_message(row) for row in rows]

    async def count_dead_letters(
        self,
        *,
        destination: str | None = None,
        type_name: str | None = None,
        since: float | None = None,
        error: str | None = None,
    ) -> int:
        conditions = _dead_letter_conditions(destination, type_name, since, error)
        statement = select(func.count()).select_from(outbox_table).where(*conditions)
        async with self._connection("count dead letters") as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def add_dead_letter(self, message: OutboxMessage, /) -> None:
        values = _row(message) | {"status": "dead"}
        dialect_insert = (
            postgresql.insert if self.database.dialect == "postgresql" else sqlite.insert
        )
        statement = dialect_insert(outbox_table).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[outbox_table.c.message_id],
            set_={
                "status": "dead",
                "attempts": statement.excluded.attempts,
                "last_error": statement.excluded.last_error,
                "delivered_at": None,
            },
        )
        async with self._connection("store a dead letter") as connection:
            await connection.execute(statement)

    async def replay(self, message_ids: Sequence[str] | None, now: float, /) -> list[str]:
        statement = (
            outbox_table.update()
            .where(outbox_table.c.status == "dead")
            .values(status="pending", attempts=0, next_attempt_at=now, last_error=None)
            .returning(outbox_table.c.message_id)
        )
        if message_ids is not None:
            statement = statement.where(
                outbox_table.c.message_id.in_(bindparam("ids", expanding=True))
            )
        async with self.database.unit_of_work() as uow:
            with unavailable_as_store_error("replay dead letters"):
                connection = uow.connection
                params = {"ids": list(message_ids)} if message_ids is not None else {}
                replayed = list((await connection.execute(statement, params)).scalars())
                if replayed and self.database.dialect == "postgresql":
                    await connection.execute(text(f"SELECT pg_notify('{OUTBOX_CHANNEL}', '')"))
                if replayed:
                    uow.after_commit(self._signal.notify)
        return replayed

    async def purge_dead(self, message_ids: Sequence[str] | None, /) -> list[str]:
        statement = (
            outbox_table.delete()
            .where(outbox_table.c.status == "dead")
            .returning(outbox_table.c.message_id)
        )
        if message_ids is not None:
            statement = statement.where(
                outbox_table.c.message_id.in_(bindparam("ids", expanding=True))
            )
        params = {"ids": list(message_ids)} if message_ids is not None else {}
        async with self._connection("purge dead letters") as connection:
            return list((await connection.execute(statement, params)).scalars())

    @asynccontextmanager
    async def _connection(self, operation: str) -> AsyncIterator[AsyncConnection]:
        async with self.database.unit_of_work() as uow:
            with unavailable_as_store_error(operation):
                yield uow.connection

    async def _scalar(self, statement: Any, operation: str) -> Any:
        async with self._connection(operation) as connection:
            return (await connection.execute(statement)).scalar()


def _dead_letter_conditions(
    destination: str | None, type_name: str | None, since: float | None, error: str | None
) -> list[ColumnElement[bool]]:
    table = outbox_table
    conditions: list[ColumnElement[bool]] = [table.c.status == OutboxStatus.DEAD.value]
    if destination is not None:
        conditions.append(table.c.destination == destination)
    if type_name is not None:
        conditions.append(table.c.type_name == type_name)
    if since is not None:
        conditions.append(table.c.created_at >= since)
    if error is not None:  # lower(...) LIKE lower(...) on both dialects, `%` and `_` escaped
        conditions.append(table.c.last_error.icontains(error, autoescape=True))
    return conditions


async def _drop_blocked(
    connection: AsyncConnection,
    messages: list[OutboxMessage],
    positions: dict[str, int],
    statement: Any,
    claim_params: dict[str, Any],
) -> list[OutboxMessage]:
    keys = list({m.partition_key for m in messages if m.partition_key is not None})
    if not keys:
        return messages
    claimed = list(positions.values())
    params = claim_params | {"keys": keys, "positions": claimed, "last": max(claimed)}
    rows = (await connection.execute(statement, params)).all()
    blocked: dict[str, int] = {row[0]: row[1] for row in rows}
    if not blocked:
        return messages
    return [
        m
        for m in messages
        if m.partition_key is None
        or m.partition_key not in blocked
        or positions[m.message_id] < blocked[m.partition_key]
    ]


class SqlOutboxBackend:
    """Outbox and inbox in the SQL database of ``SqlModule``, written in its unit of work.

    Example: ``OutboxModule.register(transport=..., backend=SqlOutboxBackend())`` in an app
    that registers ``SqlModule.register(url=...)``.
    """

    __slots__ = ()

    def providers(self) -> Sequence[ProviderSpec]:
        return [
            singleton(OutboxStore, SqlOutboxStore),
            scoped(OutboxWriterPort, SqlOutboxWriter),
            scoped(Inbox, SqlInbox),
        ]

    def imports(self) -> Sequence[ModuleLike]:
        return (SqlModule,)
