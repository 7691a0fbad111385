"""Process manager instances on SQL: one row per ``(name, key)`` in ``dockyard_processes``.

``SqlProcessWriter`` reads an instance ``FOR UPDATE`` on PostgreSQL (SQLite's write
transactions hold the one write lock from their start: ``BEGIN IMMEDIATE``) and writes it back
fenced by its version, in the scope's unit of work. See docs/design/sagas.md, "Process
managers".
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    text,
)

from dockyard.di import ProviderSpec, scoped, singleton
from dockyard.modules import ModuleLike
from dockyard.sagas import ProcessRecord, ProcessStatus, ProcessStore, ProcessWriter
from dockyard.sagas._process_store import FINISHED
from dockyard.sql._database import Database
from dockyard.sql._errors import unavailable_as_store_error
from dockyard.sql._metadata import metadata
from dockyard.sql._module import SqlModule
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["SqlProcessBackend", "SqlProcessStore", "SqlProcessWriter", "processes_table"]

_NAME = 255

processes_table = Table(
    "dockyard_processes",
    metadata,
    Column("process_name", String(_NAME), primary_key=True),
    Column("process_key", String(_NAME), primary_key=True),
    Column("definition_version", Integer(), nullable=False),
    Column("status", String(16), nullable=False, comment="active or completed"),
    Column("state_type", String(_NAME), nullable=False),
    Column("state_schema", Integer(), nullable=False),
    Column("state_data", LargeBinary(), nullable=False),
    Column("version", BigInteger(), nullable=False, comment="the fence of every write"),
    Column("timeout_id", String(_NAME), nullable=True, comment="the pending timeout's id"),
    Column("timeout_at", Double(), nullable=True, comment="epoch seconds"),
    Column("created_at", Double(), nullable=False, comment="epoch seconds"),
    Column("updated_at", Double(), nullable=False, comment="epoch seconds"),
    comment="One row per process manager instance, written with its handlers' own writes.",
)
# ProcessControl's listings (oldest first, keyset pages), all or by status; a purge seeks the
# finished statuses through the second.
Index(
    "ix_dockyard_processes_created",
    processes_table.c.created_at,
    processes_table.c.process_name,
    processes_table.c.process_key,
)
Index(
    "ix_dockyard_processes_status",
    processes_table.c.status,
    processes_table.c.created_at,
    processes_table.c.process_name,
    processes_table.c.process_key,
)

_T = processes_table.name
_COLUMNS = (
    "process_name, process_key, definition_version, status, state_type, state_schema, "
    "state_data, version, timeout_id, timeout_at, created_at, updated_at"
)
_WHERE = "process_name = :name AND process_key = :key"
_SELECT = f"SELECT {_COLUMNS} FROM {_T} WHERE {_WHERE}"  # noqa: S608 - names are ours
_LOAD = {"postgresql": text(f"{_SELECT} FOR UPDATE"), "sqlite": text(_SELECT)}
_GET = text(_SELECT)
_INSERT = text(
    f"INSERT INTO {_T} ({_COLUMNS}) VALUES (:name, :key, :definition_version, :status, "  # noqa: S608 - names are ours; values are bound
    ":state_type, :state_schema, :state_data, :version, :timeout_id, :timeout_at, :now, "
    ":now) ON CONFLICT (process_name, process_key) DO NOTHING RETURNING version"
)
_FINISHED = ", ".join(f"'{status.value}'" for status in sorted(FINISHED))
# a batch at a time, by physical row id (one index-free lookup per row, as for sagas); rows
# another transaction holds wait for the next batch
_PURGE = {
    "postgresql": text(
        f"DELETE FROM {_T} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {_T} "  # noqa: S608 - names are ours; values are bound
        f"WHERE status IN ({_FINISHED}) AND updated_at < :before LIMIT :limit "
        "FOR UPDATE SKIP LOCKED))"
    ),
    "sqlite": text(
        f"DELETE FROM {_T} WHERE rowid IN (SELECT rowid FROM {_T} "  # noqa: S608 - names are ours; values are bound
        f"WHERE status IN ({_FINISHED}) AND updated_at < :before LIMIT :limit)"
    ),
}
_UPDATE = text(
    f"UPDATE {_T} SET definition_version = :definition_version, status = :status, "  # noqa: S608 - names are ours; values are bound
    "state_type = :state_type, state_schema = :state_schema, state_data = :state_data, "
    "version = :version, timeout_id = :timeout_id, timeout_at = :timeout_at, "
    f"updated_at = :now WHERE {_WHERE} AND version = :expected"
)


def _record(row: Any) -> ProcessRecord:
    return ProcessRecord(
        name=row[0],
        key=row[1],
        definition_version=row[2],
        status=ProcessStatus(row[3]),
        state_type=row[4],
        state_schema=row[5],
        state=bytes(row[6]),
        version=row[7],
        timeout_id=row[8],
        timeout_at=row[9],
        created_at=row[10],
        updated_at=row[11],
    )


class SqlProcessWriter(ProcessWriter):
    """Reads (held) and writes process manager instances on the scope's unit of work."""

    __slots__ = ("_uow",)

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def load(self, name: str, key: str, /) -> ProcessRecord | None:
        uow = self._uow
        with unavailable_as_store_error("load a process manager instance"):
            rows = await uow.fetch_rows(_LOAD[uow.dialect], {"name": name, "key": key})
        return _record(rows[0]) if rows else None

    async def save(self, record: ProcessRecord, /) -> bool:
        params = {
            "name": record.name,
            "key": record.key,
            "definition_version": record.definition_version,
            "status": record.status.value,
            "state_type": record.state_type,
            "state_schema": record.state_schema,
            "state_data": record.state,
            "version": record.version,
            "timeout_id": record.timeout_id,
            "timeout_at": record.timeout_at,
            "expected": record.version - 1,
            "now": time.time(),
        }
        with unavailable_as_store_error("save a process manager instance"):
            if record.version == 1:
                return bool(await self._uow.fetch_rows(_INSERT, params))
            return await self._uow.execute_count(_UPDATE, params) == 1


class SqlProcessStore(ProcessStore):
    """Reads ``dockyard_processes`` in short transactions of its own; one per app."""

    __slots__ = ("database",)

    def __init__(self, database: Database) -> None:
        self.database = database

    async def get(self, name: str, key: str, /) -> ProcessRecord | None:
        async with self.database.unit_of_work() as uow:
            with unavailable_as_store_error("read a process manager instance"):
                rows = await uow.fetch_alone(_GET, {"name": name, "key": key})
        return _record(rows[0]) if rows else None

    async def find(
        self,
        *,
        name: str | None = None,
        status: ProcessStatus | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[ProcessRecord]:
        conditions: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if name is not None:
            conditions.append("process_name = :name")
            params["name"] = name
        if status is not None:
            conditions.append("status = :status")
            params["status"] = status.value
        if after is not None:
            conditions.append(
                f"(created_at, process_name, process_key) > (SELECT created_at, process_name, "  # noqa: S608 - names are ours
                f"process_key FROM {_T} WHERE process_name = :after_name AND "
                "process_key = :after_key)"
            )
            params.update(after_name=after[0], after_key=after[1])
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        statement = text(
            f"SELECT {_COLUMNS} FROM {_T} {where}"  # noqa: S608 - names are ours; values bound
            "ORDER BY created_at, process_name, process_key LIMIT :limit"
        )
        async with self.database.unit_of_work() as uow:
            with unavailable_as_store_error("list process manager instances"):
                rows = await uow.fetch_alone(statement, params)
        return [_record(row) for row in rows]

    async def purge(self, older_than: float, limit: int, /) -> int:
        if limit < 1:
            return 0
        params = {"before": time.time() - older_than, "limit": limit}
        async with self.database.unit_of_work() as uow:
            with unavailable_as_store_error("purge finished process manager instances"):
                return await uow.execute_alone(_PURGE[self.database.dialect], params)


class SqlProcessBackend:
    """Process manager instances in the SQL database of ``SqlModule``, in its unit of work."""

    __slots__ = ()

    def providers(self) -> Sequence[ProviderSpec]:
        return [singleton(ProcessStore, SqlProcessStore), scoped(ProcessWriter, SqlProcessWriter)]

    def imports(self) -> Sequence[ModuleLike]:
        return (SqlModule,)
