"""Saga instances on SQL: ``SqlSagaWriter`` (in the unit of work), ``SqlSagaStore`` (runners and
``SagaControl``), ``SqlSagaBackend`` (both, for ``SagasModule.register(backend=...)``).

Every runner write is fenced (``WHERE saga_id = ? AND version = ? AND owner = ?``); a claim on
PostgreSQL takes rows with ``FOR UPDATE SKIP LOCKED`` and judges leases by the server's clock.
On SQLite each transaction holds the one write lock (``BEGIN IMMEDIATE``) and the clock is this
host's. See docs/design/sagas.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.di import ProviderSpec, scoped, singleton
from dockyard.exceptions import StoreUnavailableError
from dockyard.modules import ModuleLike
from dockyard.sagas import SagaLogEntry, SagaRecord, SagaStatus, SagaStore, SagaWriter, StepAction
from dockyard.sagas._store import DedicatedLeaseRenewals, LeaseRenewer
from dockyard.sql._connections import pool_capacity
from dockyard.sql._database import Database
from dockyard.sql._errors import unavailable_as_store_error
from dockyard.sql._module import SqlModule
from dockyard.sql._sagas.tables import sagas_table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["SqlSagaBackend", "SqlSagaStore", "SqlSagaWriter"]

_T = sagas_table.name
_COLUMNS = (
    "saga_id, saga_name, definition_version, status, current_step, step_action, attempts, "
    "state_type, state_schema, state_data, version, owner, lease_until, due_at, last_error, "
    "step_log, created_at, updated_at"
)
_NOW = {
    # the server's clock: runners on hosts whose clocks disagree still agree on expiry
    "postgresql": "CAST(extract(epoch FROM clock_timestamp()) AS double precision)",
    "sqlite": ":now",
}
_IN = {
    "postgresql": "{column} = ANY(:{param})",
    "sqlite": "{column} IN (SELECT value FROM json_each(:{param}))",
}
_ACTIVE = "status IN ('running', 'compensating')"
_FINISHED = "status IN ('completed', 'compensated', 'cancelled')"

_encode_log = msgspec.json.Encoder().encode
_decode_log = msgspec.json.Decoder(tuple[SagaLogEntry, ...]).decode


def _statements(dialect: str) -> dict[str, Any]:
    now = _NOW[dialect]
    names = _IN[dialect].format(column="c.saga_name", param="names")
    ids = _IN[dialect].format(column="saga_id", param="ids")
    holding = _IN[dialect].format(column="c.saga_id", param="holding")
    lock = " FOR UPDATE SKIP LOCKED" if dialect == "postgresql" else ""
    values = (
        "status = :status, current_step = :current_step, step_action = :step_action, "
        "attempts = :attempts, state_type = :state_type, state_schema = :state_schema, "
        "state_data = :state_data, version = :version, owner = :new_owner, "
        f"lease_until = {now} + :lease_ttl, due_at = {now} + :due_in, "
        f"last_error = :last_error, step_log = :step_log, updated_at = {now}"
    )
    return {
        "add": text(
            f"INSERT INTO {_T} ({_COLUMNS}) VALUES (:saga_id, :saga_name, :definition_version, "  # noqa: S608 - names are ours; values are bound
            ":status, :current_step, :step_action, :attempts, :state_type, :state_schema, "
            f":state_data, :version, :new_owner, {now} + :lease_ttl, {now}, :last_error, "
            f":step_log, {now}, {now}) ON CONFLICT (saga_id) DO NOTHING RETURNING saga_id"
        ),
        "checkpoint": text(
            f"UPDATE {_T} SET {values} "  # noqa: S608 - names are ours; values are bound
            "WHERE saga_id = :saga_id AND version = :expected AND owner = :owner"
        ),
        "update": text(
            f"UPDATE {_T} SET {values} WHERE saga_id = :saga_id AND version = :expected "  # noqa: S608 - names are ours; values are bound
            f"AND (owner IS NULL OR lease_until < {now})"
        ),
        # MATERIALIZED: the candidates are chosen (and locked) once, never per joined row
        "claim": text(
            f"WITH due AS {'MATERIALIZED ' if dialect == 'postgresql' else ''}("  # noqa: S608 - names are ours; values are bound
            f"SELECT c.saga_id FROM {_T} AS c WHERE {names} AND c.{_ACTIVE} "
            f"AND c.due_at <= {now} AND (c.owner IS NULL OR c.lease_until < {now}) "
            f"AND NOT ({holding}) ORDER BY c.due_at LIMIT :limit{lock}) "
            f"UPDATE {_T} SET owner = :owner, lease_until = {now} + :lease_ttl, "
            f"version = version + 1 WHERE saga_id IN (SELECT saga_id FROM due) "
            f"RETURNING {_COLUMNS}"
        ),
        "renew": text(
            f"UPDATE {_T} SET lease_until = {now} + :lease_ttl "  # noqa: S608 - names are ours; values are bound
            f"WHERE owner = :owner AND {ids} RETURNING saga_id"
        ),
        "release": text(
            f"UPDATE {_T} SET owner = NULL, lease_until = NULL WHERE owner = :owner AND {ids}"  # noqa: S608 - names are ours; values are bound
        ),
        "release_all": text(
            f"UPDATE {_T} SET owner = NULL, lease_until = NULL WHERE owner = :owner"  # noqa: S608 - names are ours; values are bound
        ),
        "get": text(f"SELECT {_COLUMNS} FROM {_T} WHERE saga_id = :saga_id"),  # noqa: S608
        # a batch at a time; rows another transaction holds wait for the next batch. ANY(ARRAY())
        # deletes by primary key: `IN (SELECT …)` had PostgreSQL scan the table per batch
        "purge": text(
            f"DELETE FROM {_T} WHERE saga_id {'= ANY(ARRAY(' if lock else 'IN ('}"  # noqa: S608 - names are ours; values are bound
            f"SELECT saga_id FROM {_T} WHERE {_FINISHED} AND updated_at < {now} - :older_than "
            f"LIMIT :limit{lock}){')' if lock else ''}"
        ),
        "get_locked": text(
            f"SELECT {_COLUMNS} FROM {_T} WHERE saga_id = :saga_id"  # noqa: S608 - names are ours; values are bound
            + (" FOR UPDATE" if dialect == "postgresql" else "")
        ),
    }


_STATEMENTS = {dialect: _statements(dialect) for dialect in _NOW}


def _ids(dialect: str, ids: Sequence[str]) -> Any:
    return list(ids) if dialect == "postgresql" else msgspec.json.encode(list(ids)).decode()


def _values(
    record: SagaRecord, *, due_in: float, lease_ttl: float | None, now: float
) -> dict[str, Any]:
    return {
        "saga_id": record.saga_id,
        "status": record.status.value,
        "current_step": record.step,
        "step_action": record.action.value,
        "attempts": record.attempts,
        "state_type": record.state_type,
        "state_schema": record.state_schema,
        "state_data": record.state,
        "version": record.version,
        "new_owner": record.owner,
        "lease_ttl": lease_ttl if record.owner is not None else None,
        "due_in": due_in,
        "last_error": record.error,
        "step_log": _encode_log(record.log).decode(),
        "now": now,
    }


def _record(row: Any) -> SagaRecord:
    return SagaRecord(
        saga_id=row[0],
        name=row[1],
        definition_version=row[2],
        status=SagaStatus(row[3]),
        step=row[4],
        action=StepAction(row[5]),
        attempts=row[6],
        state_type=row[7],
        state_schema=row[8],
        state=bytes(row[9]),
        version=row[10],
        owner=row[11],
        lease_until=row[12],
        due_at=row[13],
        error=row[14],
        log=_decode_log(row[15]),
        created_at=row[16],
        updated_at=row[17],
    )


class SqlSagaWriter(SagaWriter):
    """Writes saga instances on the scope's unit of work: a started instance commits with the
    command, a checkpoint with the step's own writes."""

    __slots__ = ("_uow",)

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def add(
        self,
        record: SagaRecord,
        /,
        *,
        lease_ttl: float | None = None,
        on_commit: Callable[[], object] | None = None,
    ) -> bool:
        uow = self._uow
        params = _values(record, due_in=0.0, lease_ttl=lease_ttl, now=time.time())
        params.update(saga_name=record.name, definition_version=record.definition_version)
        with unavailable_as_store_error("start a saga"):
            added = bool(await uow.fetch_rows(_STATEMENTS[uow.dialect]["add"], params))
        if added and on_commit is not None:
            uow.after_commit(on_commit)
        return added

    async def checkpoint(
        self,
        record: SagaRecord,
        /,
        *,
        owner: str,
        due_in: float = 0.0,
        lease_ttl: float | None = None,
        last: bool = False,
    ) -> bool:
        uow = self._uow
        params = _values(record, due_in=due_in, lease_ttl=lease_ttl, now=time.time())
        params.update(expected=record.version - 1, owner=owner)
        statement = _STATEMENTS[uow.dialect]["checkpoint"]
        with unavailable_as_store_error("checkpoint a saga"):
            if last:  # alone (one round trip) when the step sent nothing; its writes first
                return await uow.execute_alone(statement, params) == 1
            await uow.flush()  # the step's session objects, in the same transaction
            return await uow.execute_count(statement, params) == 1

    async def get(self, saga_id: str, /) -> SagaRecord | None:
        uow = self._uow
        with unavailable_as_store_error("read a saga"):
            rows = await uow.fetch_rows(
                _STATEMENTS[uow.dialect]["get_locked"], {"saga_id": saga_id}
            )
        return _record(rows[0]) if rows else None


class SqlSagaStore(SagaStore, DedicatedLeaseRenewals):
    """The ``SagaStore`` on ``dockyard_sagas`` (PostgreSQL or SQLite); one per app."""

    __slots__ = ("_statements", "database")

    def __init__(self, database: Database) -> None:
        self.database = database
        self._statements = _STATEMENTS[database.dialect]

    async def claim(
        self,
        names: Sequence[str],
        owner: str,
        limit: int,
        lease_ttl: float,
        /,
        *,
        holding: Sequence[str] = (),
    ) -> list[SagaRecord]:
        if not names or limit < 1:
            return []
        params = {
            "names": _ids(self.database.dialect, names),
            "holding": _ids(self.database.dialect, holding),
            "owner": owner,
            "limit": limit,
            "lease_ttl": lease_ttl,
            "now": time.time(),
        }
        async with self._uow("claim saga instances") as uow:
            rows = await uow.fetch_alone(self._statements["claim"], params)
        return sorted((_record(row) for row in rows), key=lambda r: r.due_at)

    async def renew(self, owner: str, saga_ids: Sequence[str], lease_ttl: float, /) -> list[str]:
        if not saga_ids:
            return []
        params = {
            "owner": owner,
            "ids": _ids(self.database.dialect, saga_ids),
            "lease_ttl": lease_ttl,
            "now": time.time(),
        }
        async with self._uow("renew saga leases") as uow:
            return [row[0] for row in await uow.fetch_alone(self._statements["renew"], params)]

    @asynccontextmanager
    async def lease_renewals(self) -> AsyncIterator[LeaseRenewer]:
        """Renewals on a connection of the pool held for them while the context is open, so
        they never wait behind the steps (which hold a connection each); through the pool
        like every statement when it hands out fewer than two connections at once."""
        capacity = pool_capacity(self.database.engine.sync_engine)
        if capacity is not None and capacity < 2:  # holding the one would starve the steps
            yield self
            return
        renewer = _HeldConnectionRenewer(self.database, self._statements["renew"])
        with contextlib.suppress(StoreUnavailableError):  # an outage: taken at the next renewal
            await renewer.connect()
        try:
            yield renewer
        finally:
            await renewer.close()

    async def release(self, owner: str, saga_ids: Sequence[str] | None, /) -> None:
        if saga_ids is not None and not saga_ids:
            return
        params: dict[str, Any] = {"owner": owner}
        statement = self._statements["release_all"]
        if saga_ids is not None:
            params["ids"] = _ids(self.database.dialect, saga_ids)
            statement = self._statements["release"]
        async with self._uow("release saga leases") as uow:
            await uow.execute_alone(statement, params)

    async def get(self, saga_id: str, /) -> SagaRecord | None:
        async with self._uow("read a saga instance") as uow:
            rows = await uow.fetch_alone(self._statements["get"], {"saga_id": saga_id})
        return _record(rows[0]) if rows else None

    async def find(
        self,
        *,
        name: str | None = None,
        status: SagaStatus | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[SagaRecord]:
        conditions: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if name is not None:
            conditions.append("saga_name = :name")
            params["name"] = name
        if status is not None:
            conditions.append("status = :status")
            params["status"] = status.value
        if after is not None:
            conditions.append(
                f"(created_at, saga_id) > (SELECT created_at, saga_id FROM {_T} "  # noqa: S608
                "WHERE saga_id = :after)"
            )
            params["after"] = after
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        statement = text(
            f"SELECT {_COLUMNS} FROM {_T} {where}"  # noqa: S608 - names are ours; values bound
            "ORDER BY created_at, saga_id LIMIT :limit"
        )
        async with self._uow("list saga instances") as uow:
            rows = await uow.fetch_alone(statement, params)
        return [_record(row) for row in rows]

    async def counts(self) -> Mapping[SagaStatus, int]:
        statement = text(f"SELECT status, count(*) FROM {_T} GROUP BY status")  # noqa: S608
        async with self._uow("count saga instances") as uow:
            rows = await uow.fetch_alone(statement, {})
        found = dict.fromkeys(SagaStatus, 0)
        found.update({SagaStatus(status): count for status, count in rows})
        return found

    async def update(self, record: SagaRecord, /, *, due_in: float = 0.0) -> bool:
        params = _values(record, due_in=due_in, lease_ttl=None, now=time.time())
        params.update(expected=record.version - 1, new_owner=None)
        async with self._uow("change a saga instance") as uow:
            return await uow.execute_alone(self._statements["update"], params) == 1

    async def purge(self, older_than: float, limit: int, /) -> int:
        if limit < 1:
            return 0
        params = {"older_than": older_than, "limit": limit, "now": time.time()}
        async with self._uow("purge finished saga instances") as uow:
            return await uow.execute_alone(self._statements["purge"], params)

    @asynccontextmanager
    async def _uow(self, operation: str) -> AsyncIterator[SqlUnitOfWork]:
        """A unit of work for one statement, sent alone where it can (one round trip)."""
        async with self.database.unit_of_work() as uow:
            with unavailable_as_store_error(operation):
                yield uow


class _HeldConnectionRenewer(LeaseRenewer):
    """Renews leases on one connection it keeps checked out of the pool (a runner's own)."""

    __slots__ = ("_connection", "_database", "_statement")

    def __init__(self, database: Database, statement: Any) -> None:
        self._database = database
        self._statement = statement
        self._connection: AsyncConnection | None = None

    async def connect(self) -> AsyncConnection:
        with unavailable_as_store_error("open the saga runner's lease connection"):
            self._connection = await self._database.engine.connect()
        return self._connection

    async def renew(self, owner: str, saga_ids: Sequence[str], lease_ttl: float, /) -> list[str]:
        if not saga_ids:
            return []
        # after an outage the connection is taken again from the pool (maybe behind steps)
        connection = self._connection or await self.connect()
        params = {
            "owner": owner,
            "ids": _ids(self._database.dialect, saga_ids),
            "lease_ttl": lease_ttl,
            "now": time.time(),
        }
        try:
            with unavailable_as_store_error("renew saga leases"):
                async with connection.begin():
                    result = await connection.execute(self._statement, params)
                    return [row[0] for row in result]
        except BaseException:
            # its state is unknown (a lost server, a cancelled statement): never reuse it
            self._connection = None
            await asyncio.shield(_discard(connection))
            raise

    async def close(self) -> None:
        """Back to the pool; closed instead when the runner is being cancelled (a forced stop
        sends nothing that could wait on a stalled server: docs/design/forced-stop-and-dead-
        connections.md)."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        task = asyncio.current_task()
        if task is not None and task.cancelling() > 0:
            await asyncio.shield(_discard(connection))
            return
        with contextlib.suppress(Exception):
            await asyncio.shield(connection.close())


async def _discard(connection: AsyncConnection) -> None:
    with contextlib.suppress(Exception):
        await connection.invalidate()
        await connection.close()


class SqlSagaBackend:
    """Saga instances in the SQL database of ``SqlModule``, written in its unit of work.

    Example: ``SagasModule.register(sagas=[...], backend=SqlSagaBackend())`` in an app that
    registers ``SqlModule.register(url=...)``.
    """

    __slots__ = ()

    def providers(self) -> Sequence[ProviderSpec]:
        return [singleton(SagaStore, SqlSagaStore), scoped(SagaWriter, SqlSagaWriter)]

    def imports(self) -> Sequence[ModuleLike]:
        return (SqlModule,)
