"""Tables of the event store and the snapshot store, and the channel announcing appends."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    Uuid,
)

from dockyard.sql._metadata import metadata

__all__ = [
    "EVENTS_CHANNEL",
    "events_table",
    "idempotency_keys_table",
    "snapshots_table",
    "streams_table",
]

_NAME = 255  # stream ids, type names, correlation ids: short identifiers, not prose

events_table = Table(
    "dockyard_events",
    metadata,
    # SQLite: INTEGER PRIMARY KEY AUTOINCREMENT (never reused); PostgreSQL: computed from the
    # writing transaction's id, see docs/design/event-store-ordering.md.
    Column(
        "global_position",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("event_id", Uuid(), nullable=False, unique=True),
    Column("stream_id", String(_NAME), nullable=False),
    Column("stream_version", BigInteger(), nullable=False),
    Column("type_name", String(_NAME), nullable=False),
    Column("schema_version", Integer(), nullable=False),
    Column("data", LargeBinary(), nullable=False),
    Column("correlation_id", String(_NAME), nullable=True),
    Column("causation_id", String(_NAME), nullable=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("stream_id", "stream_version"),
    sqlite_autoincrement=True,
    comment="Every event of every stream; global_position orders them all.",
)

streams_table = Table(
    "dockyard_streams",
    metadata,
    Column("stream_id", String(_NAME), primary_key=True),
    Column("version", BigInteger(), nullable=False),
    Column("deleted_at", DateTime(timezone=True), nullable=True),
    comment="One row per stream: its current version (the optimistic lock) and tombstone.",
)

idempotency_keys_table = Table(
    "dockyard_idempotency_keys",
    metadata,
    Column("stream_id", String(_NAME), primary_key=True),
    Column("idempotency_key", String(_NAME), primary_key=True),
    Column("first_version", BigInteger(), nullable=True),
    Column("last_version", BigInteger(), nullable=True),
    Column("first_position", BigInteger(), nullable=True),
    Column("last_position", BigInteger(), nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    comment="Appends made with an idempotency key, so a retry returns the first result.",
)

snapshots_table = Table(
    "dockyard_snapshots",
    metadata,
    Column("stream_id", String(_NAME), primary_key=True),
    Column("stream_version", BigInteger(), nullable=False),
    Column("type_name", String(_NAME), nullable=False),
    Column("schema_version", Integer(), nullable=False),
    Column("data", LargeBinary(), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    comment="The latest snapshot of a stream's state; a cache, safe to truncate.",
)

EVENTS_CHANNEL = "dockyard_events"
"""The PostgreSQL ``NOTIFY`` channel announcing committed appends (sent after the commit by the
process that appended, ``CommitNotices``)."""
