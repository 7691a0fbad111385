"""SQLite hot paths on the raw aiosqlite connection, inside the unit of work's transaction.

Each statement through SQLAlchemy costs a thread hop plus its own bookkeeping; an append
through it measured several times slower than raw aiosqlite (docs/event-store.md). Values are
stored exactly as SQLAlchemy stores them (UUIDs as 32 hex digits, UTC datetimes as
``YYYY-MM-DD HH:MM:SS.ffffff``), so both paths read each other's rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.eventsourcing._store import ExpectedVersion
from dockyard.eventsourcing.store._codec import EventRow
from dockyard.sql._event_tables import events, streams

__all__ = [
    "READ_ALL",
    "READ_ALL_OF_TYPES",
    "READ_STREAM_BACKWARDS",
    "READ_STREAM_FORWARDS",
    "aiosqlite_connection",
    "from_storage",
    "insert_events",
    "upsert_stream",
]

_E, _S = events.name, streams.name
_COLUMNS = ", ".join(column.name for column in events.columns)
_INSERT_COLUMNS = [c.name for c in events.columns if c.name != "global_position"]
_MAX_ROWS = 32_766 // len(_INSERT_COLUMNS)  # SQLite's bound-parameter limit per statement

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


async def aiosqlite_connection(
    connection: AsyncConnection,
) -> Any:  # aiosqlite.Connection (untyped)
    """The aiosqlite connection, its ``BEGIN IMMEDIATE`` sent (by the engine's begin hook)."""
    if not connection.in_transaction():  # after a commit, SQLAlchemy would autobegin too
        await connection.begin()
    return (await connection.get_raw_connection()).driver_connection


def _kind(expected: int | ExpectedVersion) -> str:
    if expected is ExpectedVersion.ANY:
        return "any"
    if expected is ExpectedVersion.STREAM_EXISTS:
        return "exists"
    if expected is ExpectedVersion.NO_STREAM or expected == 0:
        return "create"
    return "exact"


async def upsert_stream(
    driver: Any,  # aiosqlite.Connection (untyped)
    stream_id: str,
    count: int,
    expected: int | ExpectedVersion,
) -> int | None:
    """Bump the stream's version if ``expected`` holds; the new version, or ``None``."""
    kind = _kind(expected)
    arguments: tuple[object, ...] = (stream_id, count)
    if kind == "exact":
        arguments = (stream_id, count, expected)
    rows = await driver.execute_fetchall(_UPSERT[kind], arguments)
    return int(rows[0][0]) if rows else None


def _stored(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def insert_events(
    driver: Any,  # aiosqlite.Connection (untyped)
    stream_id: str,
    rows: list[EventRow],
    first_version: int,
    recorded_at: datetime,
) -> tuple[int, int]:
    """Insert the rows; AUTOINCREMENT hands out their positions. ``(first, last)`` position."""
    recorded = _stored(recorded_at)
    placeholders = "(" + ", ".join("?" * len(_INSERT_COLUMNS)) + ")"
    positions: list[int] = []
    for start in range(0, len(rows), _MAX_ROWS):
        chunk = rows[start : start + _MAX_ROWS]
        sql = (
            f"INSERT INTO {_E} ({', '.join(_INSERT_COLUMNS)}) VALUES "  # noqa: S608
            f"{', '.join([placeholders] * len(chunk))} RETURNING global_position"
        )
        arguments: list[object] = []
        for offset, row in enumerate(chunk, start=first_version + start):
            arguments += (
                row.event_id.hex,
                stream_id,
                offset,
                row.type_name,
                row.schema_version,
                row.data,
                row.correlation_id,
                row.causation_id,
                _stored(row.occurred_at),
                recorded,
            )
        positions += [r[0] for r in await driver.execute_fetchall(sql, arguments)]
    # one writer at a time and one statement per chunk: the positions are contiguous
    return min(positions), max(positions)


def from_storage(rows: Sequence[Sequence[Any]]) -> Iterator[tuple[Any, ...]]:
    """Rows as SQLAlchemy would hand them back: ``UUID`` ids and aware UTC datetimes."""
    # The events of one append share their timestamps: parse each distinct one once.
    moments: dict[str, datetime] = {}

    def moment(text: str) -> datetime:
        found = moments.get(text)
        if found is None:
            found = moments[text] = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return found

    for (position, event_id, stream_id, version, type_name, schema_version, data,
         correlation_id, causation_id, occurred_at, recorded_at) in rows:  # fmt: skip
        yield (
            position,
            UUID(event_id),
            stream_id,
            version,
            type_name,
            schema_version,
            data,
            correlation_id,
            causation_id,
            moment(occurred_at),
            moment(recorded_at),
        )
