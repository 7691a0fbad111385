"""SQLite append: one writer at a time (``BEGIN IMMEDIATE``), so read, check, then write."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.eventsourcing._store import ExpectedVersion
from dockyard.eventsourcing.store._codec import EventRow, check_expected_version
from dockyard.exceptions import StreamDeletedError
from dockyard.sql._event_tables import events, streams

__all__ = ["append_sqlite"]

_CURRENT = select(streams.c.version, streams.c.deleted_at)
_INSERT_EVENTS = insert(events)
# AUTOINCREMENT keeps the largest position ever used here, even after the newest events were
# deleted, so positions are never reused; explicit positions also move it forward.
_LAST_POSITION = text("SELECT seq FROM sqlite_sequence WHERE name = :table").bindparams(
    table=events.name
)


async def append_sqlite(
    connection: AsyncConnection,
    stream_id: str,
    rows: list[EventRow],
    expected: int | ExpectedVersion,
    recorded_at: datetime,
) -> tuple[int, int, int, int]:
    """Insert the events; ``(first_version, last_version, first_pos, last_pos)``.

    Raises:
        StreamDeletedError, ConcurrencyError: before anything is written.
    """
    found = (
        await connection.execute(_CURRENT.where(streams.c.stream_id == stream_id))
    ).one_or_none()
    current = found.version if found is not None else 0
    if found is not None and found.deleted_at is not None:
        raise StreamDeletedError(stream_id, current, "append to")
    check_expected_version(stream_id, expected, current, exists=current > 0)
    last_version = current + len(rows)
    if found is None:
        await connection.execute(insert(streams).values(stream_id=stream_id, version=last_version))
    else:
        await connection.execute(
            update(streams).where(streams.c.stream_id == stream_id).values(version=last_version)
        )
    last_position = (await connection.execute(_LAST_POSITION)).scalar() or 0
    await connection.execute(
        _INSERT_EVENTS,
        [
            {
                "global_position": last_position + offset,
                "event_id": row.event_id,
                "stream_id": stream_id,
                "stream_version": current + offset,
                "type_name": row.type_name,
                "schema_version": row.schema_version,
                "data": row.data,
                "correlation_id": row.correlation_id,
                "causation_id": row.causation_id,
                "occurred_at": row.occurred_at,
                "recorded_at": recorded_at,
            }
            for offset, row in enumerate(rows, start=1)
        ],
    )
    return current + 1, last_version, last_position + 1, last_position + len(rows)
