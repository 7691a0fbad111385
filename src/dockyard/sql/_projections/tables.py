"""Tables of projections: checkpoints and leases."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Double,
    Integer,
    String,
    Table,
    Text,
)

from dockyard.sql._metadata import metadata

__all__ = ["projection_checkpoints_table", "projection_leases_table"]

_NAME = 255

projection_checkpoints_table = Table(
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
    Column("paused_at", DateTime(timezone=True), nullable=True, comment="set while paused"),
    comment="One row per catch-up projection: its position, written with its read model.",
)

projection_leases_table = Table(
    "dockyard_projection_leases",
    metadata,
    Column("name", String(_NAME), primary_key=True),
    Column("owner", String(_NAME), nullable=False),
    Column("expires_at", Double(), nullable=False),
    comment="Which runner may apply a projection, until when (epoch seconds, database clock).",
)
