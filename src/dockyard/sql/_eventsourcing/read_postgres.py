"""PostgreSQL reads on the raw driver: SQLAlchemy's row handling measured 30 % of a replay.

See docs/event-store.md ("Where SQLAlchemy is bypassed") for the measurement. The SQL here is
written against the same ``Table`` objects, so names stay in one place.
"""

from __future__ import annotations

from dockyard.sql._eventsourcing.tables import events_table

__all__ = ["READ_ALL", "READ_ALL_OF_TYPES", "READ_STREAM_BACKWARDS", "READ_STREAM_FORWARDS"]

_COLUMNS = ", ".join(column.name for column in events_table.columns)
# $1 stream id, $2 from version, $3 limit (NULL: no limit)
READ_STREAM_FORWARDS = (
    f"SELECT {_COLUMNS} FROM {events_table.name} WHERE stream_id = $1 AND stream_version >= $2 "  # noqa: S608 -- names from our Table objects, values bound
    "ORDER BY stream_version LIMIT $3"
)
READ_STREAM_BACKWARDS = (
    f"SELECT {_COLUMNS} FROM {events_table.name} WHERE stream_id = $1 AND stream_version <= $2 "  # noqa: S608 -- names from our Table objects, values bound
    "ORDER BY stream_version DESC LIMIT $3"
)
# $1 after position, $2 limit, $3 type names: dockyard_read_all() reads below the log's
# horizon, in a snapshot taken after it (docs/design/event-store-ordering.md)
READ_ALL = f"SELECT {_COLUMNS} FROM dockyard_read_all($1, $2, NULL)"  # noqa: S608 -- our names
READ_ALL_OF_TYPES = f"SELECT {_COLUMNS} FROM dockyard_read_all($1, $2, $3::text[])"  # noqa: S608
