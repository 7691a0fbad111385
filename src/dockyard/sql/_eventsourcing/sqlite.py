"""SQLite hot paths on the raw aiosqlite connection, inside the unit of work's transaction.

Each statement through SQLAlchemy costs a thread hop plus its own bookkeeping; an append
through it measured several times slower than raw aiosqlite (docs/event-store.md). Each hop
to aiosqlite's worker thread costs more than a statement, so an append (the transaction's
``BEGIN IMMEDIATE`` if not sent yet, the stream upsert, the event insert) runs as one function
in that thread: one hop; a read likewise. That needs aiosqlite's ``Connection._execute(fn,
*args)``, private but unchanged for years; ``SqlUnitOfWork.run_in_driver_thread`` is the one way
in, and falls back to one hop per statement if it ever changes
(``tests/unit/sql/test_sqlite_driver.py`` fails loudly then).

Values are stored exactly as SQLAlchemy stores them (UUIDs as 32 hex digits, UTC datetimes as
``YYYY-MM-DD HH:MM:SS.ffffff``), so both paths read each other's rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, SafeUUID

from dockyard.eventsourcing._codec import EventRow
from dockyard.eventsourcing._store import ExpectedVersion
from dockyard.exceptions import CorruptEventError
from dockyard.sql._eventsourcing.tables import events_table, streams_table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = [
    "READ_ALL",
    "READ_ALL_OF_TYPES",
    "READ_STREAM_BACKWARDS",
    "READ_STREAM_FORWARDS",
    "append_sqlite",
    "fetch_rows",
    "from_storage",
]

_E, _S = events_table.name, streams_table.name
_COLUMNS = ", ".join(column.name for column in events_table.columns)
_INSERT_COLUMNS = [c.name for c in events_table.columns if c.name != "global_position"]

# S608 below: the names come from our Table objects; every value is bound
_UPSERT = {
    "create": f"INSERT INTO {_S} (stream_id, version) VALUES (?1, ?2) "  # noqa: S608
    "ON CONFLICT (stream_id) DO NOTHING RETURNING version",
    "any": f"INSERT INTO {_S} (stream_id, version) VALUES (?1, ?2) "  # noqa: S608
    "ON CONFLICT (stream_id) DO UPDATE SET version = version + excluded.version "
    "WHERE deleted_at IS NULL RETURNING version",
    "exists": f"UPDATE {_S} SET version = version + ?2 WHERE stream_id = ?1 "  # noqa: S608
    "AND deleted_at IS NULL RETURNING version",
    "exact": f"UPDATE {_S} SET version = version + ?2 WHERE stream_id = ?1 "  # noqa: S608
    "AND version = ?3 AND deleted_at IS NULL RETURNING version",
}
READ_STREAM_FORWARDS = (
    f"SELECT {_COLUMNS} FROM {_E} WHERE stream_id = ? AND stream_version >= ? "  # noqa: S608
    "ORDER BY stream_version LIMIT ?"
)
READ_STREAM_BACKWARDS = (
    f"SELECT {_COLUMNS} FROM {_E} WHERE stream_id = ? AND stream_version <= ? "  # noqa: S608
    "ORDER BY stream_version DESC LIMIT ?"
)
READ_ALL = (
    f"SELECT {_COLUMNS} FROM {_E} WHERE global_position > ? "  # noqa: S608
    "ORDER BY global_position LIMIT ?"
)
READ_ALL_OF_TYPES = (
    f"SELECT {_COLUMNS} FROM {_E} WHERE global_position > ? AND type_name IN "  # noqa: S608
    "(SELECT value FROM json_each(?)) ORDER BY global_position LIMIT ?"
)


def _kind(expected: int | ExpectedVersion) -> str:
    if expected is ExpectedVersion.ANY:
        return "any"
    if expected is ExpectedVersion.STREAM_EXISTS:
        return "exists"
    if expected is ExpectedVersion.NO_STREAM or expected == 0:
        return "create"
    return "exact"


def _stored(moment: datetime) -> str:
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # what strftime("%Y-%m-%d %H:%M:%S.%f") writes, faster (docs/event-store.md)
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


_INSERT = (
    f"INSERT INTO {_E} ({', '.join(_INSERT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})"
)
_LAST_POSITION = "SELECT last_insert_rowid()"


def _values(
    stream_id: str, rows: list[EventRow], first_version: int, recorded_at: datetime
) -> list[tuple[object, ...]]:
    """The parameters of the append's INSERT, one tuple per event."""
    recorded = _stored(recorded_at)
    return [
        (
            row.event_id.hex,
            stream_id,
            version,
            row.type_name,
            row.schema_version,
            row.data,
            row.correlation_id,
            row.causation_id,
            # most events occur when they are recorded: that moment is formatted once
            recorded if row.occurred_at is recorded_at else _stored(row.occurred_at),
            recorded,
        )
        for version, row in enumerate(rows, start=first_version)
    ]


# One writer at a time (BEGIN IMMEDIATE) and AUTOINCREMENT: the rows of one append get
# contiguous positions, ending at last_insert_rowid(). executemany of a one-row INSERT
# measured faster than one multi-row INSERT ... RETURNING (docs/event-store.md).


def _append_in_thread(
    sqlite: sqlite3.Connection,
    upsert: tuple[str, tuple[object, ...]],
    stream_id: str,
    rows: list[EventRow],
    recorded_at: datetime,
) -> tuple[int, int, int, int] | None:
    found = sqlite.execute(*upsert).fetchone()
    if found is None:
        return None
    last = int(found[0])
    first = last - len(rows) + 1
    values = _values(stream_id, rows, first, recorded_at)
    if len(values) == 1:
        position = sqlite.execute(_INSERT, values[0]).lastrowid
    else:
        sqlite.executemany(_INSERT, values)
        (position,) = sqlite.execute(_LAST_POSITION).fetchone()
    assert position is not None
    return first, last, position - len(rows) + 1, position


async def append_sqlite(
    uow: SqlUnitOfWork,
    stream_id: str,
    rows: list[EventRow],
    expected: int | ExpectedVersion,
    recorded_at: datetime,
) -> tuple[int, int, int, int] | None:
    """Bump the stream's version if ``expected`` holds and insert the rows (one hop).

    ``(first_version, last_version, first_position, last_position)``, or ``None`` if nothing
    was written (the version check failed or the stream is deleted; the caller finds out).
    """
    kind = _kind(expected)
    arguments: tuple[object, ...] = (stream_id, len(rows))
    if kind == "exact":
        arguments = (stream_id, len(rows), expected)
    upsert = (_UPSERT[kind], arguments)
    done = await uow.run_in_driver_thread(_append_in_thread, upsert, stream_id, rows, recorded_at)
    if done is not None:
        return done[0]
    driver = await uow.driver()
    found = await driver.execute_fetchall(*upsert)
    if not found:
        return None
    last = int(found[0][0])
    first = last - len(rows) + 1
    await driver.executemany(_INSERT, _values(stream_id, rows, first, recorded_at))
    ((position,),) = await driver.execute_fetchall(_LAST_POSITION, ())
    return first, last, position - len(rows) + 1, position


_new = object.__new__
_set = object.__setattr__
_UNKNOWN_SAFETY = SafeUUID.unknown


def _uuid(hex_digits: str) -> UUID:
    # UUID(hex) validates and normalizes its argument, twice the cost of this; the column only
    # ever holds what ``UUID.hex`` wrote, and int() still rejects anything that is not hex.
    if len(hex_digits) != 32:
        raise ValueError(f"invalid literal for a UUID's 32 hex digits: {hex_digits!r}")
    uuid = _new(UUID)
    _set(uuid, "int", int(hex_digits, 16))
    _set(uuid, "is_safe", _UNKNOWN_SAFETY)
    return uuid


def from_storage(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows as SQLAlchemy would hand them back: ``UUID`` ids and aware UTC datetimes."""
    # The events of one append share their timestamps: parse each distinct one once.
    moments: dict[str, datetime] = {}

    def moment(text: str) -> datetime:
        found = moments.get(text)
        if found is None:
            found = moments[text] = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return found

    try:
        return [
            (position, _uuid(event_id), stream_id, version, type_name, schema_version, data,
             correlation_id, causation_id, moment(occurred_at), moment(recorded_at))
            for (position, event_id, stream_id, version, type_name, schema_version, data,
                 correlation_id, causation_id, occurred_at, recorded_at) in rows
        ]  # fmt: skip
    except (ValueError, TypeError):
        raise _corrupt_row(rows) from None


def _corrupt_row(rows: Sequence[Sequence[Any]]) -> CorruptEventError:
    """The error naming the first row whose id or timestamps do not parse (the cold path)."""

    def moment(text: str) -> datetime:
        return datetime.fromisoformat(text)

    for row in rows:
        position, event_id, stream_id, version, type_name = row[:5]
        for column, value, parse in (
            ("event_id", event_id, _uuid),
            ("occurred_at", row[9], moment),
            ("recorded_at", row[10], moment),
        ):
            try:
                parse(value)
            except (ValueError, TypeError):
                detail = f"its {column} column holds {value!r}"
                return CorruptEventError(type_name, detail, stream_id, version, position)
    raise AssertionError("no row of the page is malformed, yet its conversion failed")


def _fetch_in_thread(
    sqlite: sqlite3.Connection, sql: str, arguments: Sequence[object]
) -> list[Any]:
    return sqlite.execute(sql, arguments).fetchall()


async def fetch_rows(
    uow: SqlUnitOfWork,
    sql: str,
    arguments: Sequence[object],
) -> list[tuple[Any, ...]]:
    """Rows of ``dockyard_events``, converted by ``from_storage``.

    One hop, the transaction's BEGIN included; converting in the worker thread instead of here
    measured slower (docs/event-store.md), so only the fetch goes there.
    """
    done = await uow.run_in_driver_thread(_fetch_in_thread, sql, arguments)
    if done is not None:
        return from_storage(done[0])
    driver = await uow.driver()
    return from_storage(await driver.execute_fetchall(sql, arguments))
