"""``SqlSnapshotStore``: snapshots in ``dockyard_snapshots`` on the unit of work's connection."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dockyard.eventsourcing._codec import decode_snapshot, now
from dockyard.eventsourcing._store import check_stream_id
from dockyard.eventsourcing._store_snapshots import Snapshot
from dockyard.serialization import Serializer
from dockyard.sql._errors import unavailable_as_store_error
from dockyard.sql._eventsourcing.tables import snapshots_table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["SqlSnapshotStore"]

S = TypeVar("S")

_LOAD = select(
    snapshots_table.c.stream_version,
    snapshots_table.c.type_name,
    snapshots_table.c.schema_version,
    snapshots_table.c.data,
    snapshots_table.c.recorded_at,
)


class SqlSnapshotStore:
    """A ``SnapshotStore`` writing on a ``SqlUnitOfWork``'s connection; one row per stream."""

    __slots__ = ("_postgres", "serializer", "uow")

    def __init__(self, uow: SqlUnitOfWork, serializer: Serializer | None = None) -> None:
        self.uow = uow
        self.serializer = serializer if serializer is not None else Serializer()
        self._postgres = uow.dialect == "postgresql"

    async def save(self, stream_id: str, stream_version: int, state: object) -> None:
        check_stream_id(stream_id)
        stored = self.serializer.serialize(state)
        insert = pg_insert if self._postgres else sqlite_insert
        upsert = insert(snapshots_table).values(
            stream_id=stream_id,
            stream_version=stream_version,
            type_name=stored.type_name,
            schema_version=stored.schema_version,
            data=stored.data,
            recorded_at=now(),
        )
        replace = upsert.on_conflict_do_update(
            index_elements=[snapshots_table.c.stream_id],
            set_={
                name: upsert.excluded[name]
                for name in ("stream_version", "type_name", "schema_version", "data", "recorded_at")
            },
            # an older snapshot (a slow writer) never replaces a newer one
            where=snapshots_table.c.stream_version <= upsert.excluded.stream_version,
        )
        with unavailable_as_store_error(f"save the snapshot of stream `{stream_id}`"):
            await self.uow.connection.execute(replace)

    async def load(self, stream_id: str, state_type: type[S]) -> Snapshot[S] | None:
        check_stream_id(stream_id)
        with unavailable_as_store_error(f"load the snapshot of stream `{stream_id}`"):
            found = (
                await self.uow.connection.execute(
                    _LOAD.where(snapshots_table.c.stream_id == stream_id)
                )
            ).one_or_none()
        if found is None:
            return None
        return decode_snapshot(
            self.serializer,
            state_type,
            stream_id=stream_id,
            stream_version=found.stream_version,
            type_name=found.type_name,
            schema_version=found.schema_version,
            data=found.data,
            recorded_at=found.recorded_at,
        )

    async def delete(self, stream_id: str) -> None:
        check_stream_id(stream_id)
        with unavailable_as_store_error(f"delete the snapshot of stream `{stream_id}`"):
            await self.uow.connection.execute(
                delete(snapshots_table).where(snapshots_table.c.stream_id == stream_id)
            )
