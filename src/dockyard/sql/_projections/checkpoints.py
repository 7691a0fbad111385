"""``SqlCheckpointStore``: checkpoints on the unit of work's connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dockyard.projections._checkpoints import Checkpoint, Failure, utc_now
from dockyard.sql._errors import unavailable_as_store_error
from dockyard.sql._projections.tables import projection_checkpoints_table as table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["SqlCheckpointStore"]

_SELECT = select(table)


class SqlCheckpointStore:
    """A ``CheckpointStore`` writing on a ``SqlUnitOfWork``'s connection (scoped, like the uow).

    A catch-up batch saves its checkpoint here in the same transaction as the read model;
    ``lock`` is ``SELECT … FOR UPDATE`` on PostgreSQL (SQLite already holds the write lock).
    """

    __slots__ = ("_postgres", "uow")

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow
        self._postgres = uow.dialect == "postgresql"

    async def load(self, name: str) -> Checkpoint:
        with unavailable_as_store_error(f"load the checkpoint of `{name}`"):
            row = (
                await self.uow.connection.execute(_SELECT.where(table.c.name == name))
            ).one_or_none()
        return Checkpoint(name) if row is None else _checkpoint(row)

    async def lock(self, name: str) -> Checkpoint:
        query = _SELECT.where(table.c.name == name)
        if self._postgres:
            query = query.with_for_update()
        with unavailable_as_store_error(f"lock the checkpoint of `{name}`"):
            connection = self.uow.connection
            row = (await connection.execute(query)).one_or_none()
            if row is None:  # create it, so there is a row to hold for the rest of the batch
                insert = pg_insert if self._postgres else sqlite_insert
                await connection.execute(
                    insert(table).values(_values(Checkpoint(name))).on_conflict_do_nothing()
                )
                row = (await connection.execute(query)).one()
        return _checkpoint(row)

    async def save(self, checkpoint: Checkpoint) -> None:
        insert = pg_insert if self._postgres else sqlite_insert
        values = _values(checkpoint)
        statement = insert(table).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.name],
            set_={k: v for k, v in values.items() if k != "name"},
        )
        with unavailable_as_store_error(f"save the checkpoint of `{checkpoint.name}`"):
            await self.uow.connection.execute(statement)

    async def load_all(self) -> Sequence[Checkpoint]:
        with unavailable_as_store_error("load the checkpoints"):
            rows = (await self.uow.connection.execute(_SELECT.order_by(table.c.name))).all()
        return [_checkpoint(row) for row in rows]


def _values(checkpoint: Checkpoint) -> dict[str, Any]:
    failure = checkpoint.failure
    return {
        "name": checkpoint.name,
        "position": checkpoint.position,
        "failed_position": failure.position if failure else None,
        "error": failure.error if failure else None,
        "attempts": failure.attempts if failure else 0,
        "failed_at": failure.failed_at if failure else None,
        "applied_since_reset": checkpoint.applied_since_reset,
        "reset_at": checkpoint.reset_at,
        "updated_at": utc_now(),
        "paused_at": checkpoint.paused_at,
    }


def _utc(value: datetime | None) -> datetime | None:
    # SQLite keeps no time zone: what it returns was written in UTC
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _checkpoint(row: Row[Any]) -> Checkpoint:
    failure = None
    if row.failed_position is not None:
        failed_at = _utc(row.failed_at)
        assert failed_at is not None
        failure = Failure(row.failed_position, row.error or "", row.attempts, failed_at)
    return Checkpoint(
        row.name,
        row.position,
        failure,
        row.applied_since_reset,
        _utc(row.reset_at),
        _utc(row.updated_at),
        _utc(row.paused_at),
    )
