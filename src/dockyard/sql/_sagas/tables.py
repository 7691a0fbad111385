"""The table of saga instances: one row each, its step log inside."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    text,
)

from dockyard.sql._metadata import metadata

__all__ = ["sagas_table"]

_NAME = 255

sagas_table = Table(
    "dockyard_sagas",
    metadata,
    Column("saga_id", String(_NAME), primary_key=True),
    Column("saga_name", String(_NAME), nullable=False),
    Column("definition_version", Integer(), nullable=False),
    Column("status", String(16), nullable=False, comment="see dockyard.sagas.SagaStatus"),
    Column("current_step", String(_NAME), nullable=True),
    Column("step_action", String(16), nullable=False, comment="act or compensate"),
    Column("attempts", Integer(), nullable=False),
    Column("state_type", String(_NAME), nullable=False),
    Column("state_schema", Integer(), nullable=False),
    Column("state_data", LargeBinary(), nullable=False),
    Column("version", BigInteger(), nullable=False, comment="the fence of every runner write"),
    Column("owner", String(_NAME), nullable=True),
    Column("lease_until", Double(), nullable=True, comment="epoch seconds, database clock"),
    Column("due_at", Double(), nullable=False, comment="epoch seconds, database clock"),
    Column("last_error", Text(), nullable=True),
    Column("step_log", Text(), nullable=False, comment="JSON array of log entries"),
    Column("created_at", Double(), nullable=False, comment="epoch seconds"),
    Column("updated_at", Double(), nullable=False, comment="epoch seconds"),
    comment="One row per saga instance, checkpointed with each step's own writes.",
)

# What a claim walks: the active instances, by due time. Tiny next to the finished ones.
Index(
    "ix_dockyard_sagas_due",
    sagas_table.c.due_at,
    postgresql_where=text("status IN ('running', 'compensating')"),
    sqlite_where=text("status IN ('running', 'compensating')"),
)
# SagaControl's listings: oldest first, by status (the parked ones) or all.
Index("ix_dockyard_sagas_created", sagas_table.c.created_at, sagas_table.c.saga_id)
Index(
    "ix_dockyard_sagas_status",
    sagas_table.c.status,
    sagas_table.c.created_at,
    sagas_table.c.saga_id,
)
