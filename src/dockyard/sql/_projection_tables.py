"""Tables of projections (checkpoints, leases) and the trigger that announces new events."""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    DateTime,
    Double,
    Integer,
    String,
    Table,
    Text,
    event,
)

from dockyard.sql._event_tables import events
from dockyard.sql._metadata import metadata

__all__ = [
    "EVENTS_CHANNEL",
    "events_notify_ddl",
    "projection_checkpoints",
    "projection_leases",
]

_NAME = 255

projection_checkpoints = Table(
    "dockyard_projection_checkpoints",
    metadata,
    Column("name", String(_NAME), primary_key=True),
    Column("position", BigInteger(), nullable=False),
    Column("failed_position", BigInteger(), nullable=True),
    Column("error", Text(), nullable=True),
    Column("attempts", Integer(), nullable=False),
    Column("failed_at", DateTime(timezone=True), nullable=True),
    Column("applied_since_reset", BigInteger(), nullable=False),
    Column("reset_at", DateTime(timezone=True), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    comment="One row per catch-up projection: its position, written with its read model.",
)

projection_leases = Table(
    "dockyard_projection_leases",
    metadata,
    Column("name", String(_NAME), primary_key=True),
    Column("owner", String(_NAME), nullable=False),
    Column("expires_at", Double(), nullable=False),
    comment="Which runner may apply a projection, until when (epoch seconds, database clock).",
)

EVENTS_CHANNEL = "dockyard_events"
"""The PostgreSQL ``NOTIFY`` channel announcing committed appends."""

events_notify_ddl = (
    (
        "CREATE OR REPLACE FUNCTION dockyard_notify_events() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        f"PERFORM pg_notify('{EVENTS_CHANNEL}', ''); RETURN NULL; END $$"
    ),
    (
        "CREATE TRIGGER dockyard_events_notify AFTER INSERT ON dockyard_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION dockyard_notify_events()"
    ),
)
"""PostgreSQL statements that make every append ``NOTIFY dockyard_events`` at commit (for the
live tail of catch-up projections). ``create_tables`` runs them; add them to your migrations
if you create the tables another way."""

for _statement in events_notify_ddl:
    ddl = DDL(_statement)  # type: ignore[no-untyped-call]  # SQLAlchemy leaves DDL() untyped
    event.listen(events, "after_create", ddl.execute_if(dialect="postgresql"))
