"""Tables of reliable delivery: the outbox, its scheduled messages, the inbox."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    text,
)

from dockyard.sql._metadata import metadata

__all__ = ["OUTBOX_CHANNEL", "inbox_table", "outbox_scheduled_table", "outbox_table"]

_NAME = 255


def _position(comment: str | None = None) -> Column[int]:
    return Column(
        "position",
        BigInteger().with_variant(Integer(), "sqlite"),  # SQLite autoincrements INTEGER keys
        primary_key=True,
        autoincrement=True,
        comment=comment,
    )


def _message_columns() -> list[Column[Any]]:
    """What the outbox and its scheduled messages both keep of a message."""
    return [
        Column("message_id", String(_NAME), nullable=False, unique=True),
        Column("destination", String(_NAME), nullable=False),
        Column("type_name", String(_NAME), nullable=False),
        Column("schema_version", Integer(), nullable=False),
        Column("payload", LargeBinary(), nullable=False),
        Column("headers", Text(), nullable=False, comment="JSON object of string headers"),
        Column("partition_key", String(_NAME), nullable=True),
        Column("created_at", Double(), nullable=False, comment="epoch seconds"),
    ]


outbox_table = Table(
    "dockyard_outbox",
    metadata,
    _position(),
    *_message_columns(),
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", Double(), nullable=False, comment="epoch seconds"),
    Column("status", String(16), nullable=False, comment="pending, delivered or dead"),
    Column("last_error", Text(), nullable=True),
    Column("delivered_at", Double(), nullable=True, comment="epoch seconds"),
    comment="Messages for other services, written with the transaction that produced them.",
)

# The claim walks this in position order and stops after a batch (see outbox-relay.md).
Index(
    "ix_dockyard_outbox_pending",
    outbox_table.c.position,
    postgresql_where=text("status = 'pending'"),
    sqlite_where=text("status = 'pending'"),
)
# Per key, in order: what a claim checks once it holds its keys' locks (outbox-relay.md).
Index(
    "ix_dockyard_outbox_pending_keys",
    outbox_table.c.partition_key,
    outbox_table.c.position,
    postgresql_where=text("status = 'pending'"),
    sqlite_where=text("status = 'pending'"),
)
# Failed messages waiting for a retry: they block later messages of their key. Tiny when healthy.
Index(
    "ix_dockyard_outbox_retrying",
    outbox_table.c.partition_key,
    outbox_table.c.position,
    postgresql_where=text("status = 'pending' AND attempts > 0"),
    sqlite_where=text("status = 'pending' AND attempts > 0"),
)
Index(
    "ix_dockyard_outbox_delivered",
    outbox_table.c.delivered_at,
    postgresql_where=text("status = 'delivered'"),
    sqlite_where=text("status = 'delivered'"),
)
Index(
    "ix_dockyard_outbox_dead",
    outbox_table.c.position,
    postgresql_where=text("status = 'dead'"),
    sqlite_where=text("status = 'dead'"),
)

# Scheduled messages live apart until due, so the outbox's claim never reads them
# (docs/design/scheduled-messages.md); the relay moves due rows into the outbox.
outbox_scheduled_table = Table(
    "dockyard_outbox_scheduled",
    metadata,
    _position("scheduling order: breaks ties between equal due times"),
    *_message_columns(),
    Column("deliver_at", Double(), nullable=False, comment="epoch seconds: due time"),
    comment="Outbox messages not due yet; the relay moves each into dockyard_outbox when due.",
)
# Promotion reads it from the start up to `now`; "nothing is due" is one probe.
Index(
    "ix_dockyard_outbox_scheduled_due",
    outbox_scheduled_table.c.deliver_at,
    outbox_scheduled_table.c.position,
)

inbox_table = Table(
    "dockyard_inbox",
    metadata,
    Column("message_id", String(_NAME), nullable=False),
    Column("handler", String(_NAME), nullable=False),
    Column("handled_at", Double(), nullable=False, comment="epoch seconds"),
    PrimaryKeyConstraint("message_id", "handler"),
    comment="Messages each consumer has handled, written with the handler's effects.",
)
# The relay's cleanup deletes records past the inbox's retention, oldest first. Rows arrive in
# handled_at order, so on PostgreSQL a BRIN index (a few pages, next to nothing per insert) finds
# them; SQLite has only B-trees.
Index(
    "ix_dockyard_inbox_handled",
    inbox_table.c.handled_at,
    postgresql_using="brin",
)

OUTBOX_CHANNEL = "dockyard_outbox"
"""The PostgreSQL ``NOTIFY`` channel announcing committed outbox rows (sent after the commit by
the process that wrote them, ``CommitNotices``)."""
