"""``SqlEventStore``: the event store on the unit of work's connection (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.eventsourcing._codec import (
    EventRow,
    check_expected_version,
    decode_rows,
    encode_events,
    now,
    type_names,
)
from dockyard.eventsourcing._store import (
    AppendResult,
    ExpectedVersion,
    OpenAppend,
    RecordedEvent,
    check_stream_id,
)
from dockyard.exceptions import DockyardError, StreamDeletedError
from dockyard.serialization import Serializer
from dockyard.sql._errors import as_store_error, unavailable_as_store_error
from dockyard.sql._eventsourcing.append_postgres import append_postgres
from dockyard.sql._eventsourcing.duplicates import INTEGRITY_ERRORS, duplicate_event_id_error
from dockyard.sql._eventsourcing.event_log import OPEN_APPENDS
from dockyard.sql._eventsourcing.log_head import sql_count_after, sql_log_heads
from dockyard.sql._eventsourcing.reads import log_rows, stream_rows
from dockyard.sql._eventsourcing.sqlite import append_sqlite
from dockyard.sql._eventsourcing.tables import events_table, idempotency_keys_table, streams_table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["SqlEventStore"]

_STREAM = select(streams_table.c.version, streams_table.c.deleted_at)
_KEY_RESULT = select(
    idempotency_keys_table.c.first_version,
    idempotency_keys_table.c.last_version,
    idempotency_keys_table.c.first_position,
    idempotency_keys_table.c.last_position,
)


class SqlEventStore:
    """An ``EventStore`` that writes on a ``SqlUnitOfWork``'s connection.

    Appends are part of the unit of work's transaction: they commit or roll back with
    everything else written on it. Create one per unit of work (it is cheap); it is scoped.
    It is a ``LogHeadReader``: projections read its head and lag in one query each.
    """

    __slots__ = ("_postgres", "serializer", "uow")

    def __init__(self, uow: SqlUnitOfWork, serializer: Serializer | None = None) -> None:
        self.uow = uow
        self.serializer = serializer if serializer is not None else Serializer()
        self._postgres = uow.dialect == "postgresql"

    async def append(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int | ExpectedVersion,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        try:
            recorded_at = now()
            rows = encode_events(self.serializer, stream_id, events, expected_version, recorded_at)
            if idempotency_key is not None:
                with unavailable_as_store_error(f"append to stream `{stream_id}`"):
                    return await self._append_once(
                        stream_id, rows, expected_version, recorded_at, idempotency_key
                    )
            try:  # `unavailable_as_store_error` without its three calls (the hot path)
                return await self._write(stream_id, rows, expected_version, recorded_at)
            except BaseException as exc:
                unavailable = as_store_error(f"append to stream `{stream_id}`", exc)
                if unavailable is None:
                    raise
                raise unavailable from exc
        except INTEGRITY_ERRORS as error:  # the event id index refused a row
            duplicate = await duplicate_event_id_error(error, self.uow, stream_id, events)
            if duplicate is None:
                raise
            raise duplicate from error

    async def _append_once(
        self,
        stream_id: str,
        rows: list[EventRow],
        expected_version: int | ExpectedVersion,
        recorded_at: datetime,
        idempotency_key: str,
    ) -> AppendResult:
        """The append under an idempotency key: claimed first, its result recorded."""
        connection = self.uow.connection
        previous = await self._claim_key(connection, stream_id, idempotency_key, recorded_at)
        if previous is not None:
            return previous
        try:
            result = await self._write(stream_id, rows, expected_version, recorded_at)
        except DockyardError:
            # release the claim, so a caller that recovers and commits can retry later
            await connection.execute(
                delete(idempotency_keys_table).where(*_key(stream_id, idempotency_key))
            )
            raise
        await connection.execute(
            update(idempotency_keys_table)
            .where(*_key(stream_id, idempotency_key))
            .values(
                first_version=result.first_version,
                last_version=result.last_version,
                first_position=result.first_position,
                last_position=result.last_position,
            )
        )
        return result

    async def _write(
        self,
        stream_id: str,
        rows: list[EventRow],
        expected: int | ExpectedVersion,
        recorded_at: datetime,
    ) -> AppendResult:
        if self._postgres:
            written = await append_postgres(self.uow, stream_id, rows, expected, recorded_at)
        else:
            written = await append_sqlite(self.uow, stream_id, rows, expected, recorded_at)
        if written is not None:
            return AppendResult(stream_id, *written)
        # nothing was written: find out why (the cold path)
        found = (
            await self.uow.connection.execute(_STREAM.where(streams_table.c.stream_id == stream_id))
        ).one_or_none()
        current = found.version if found is not None else 0
        if found is not None and found.deleted_at is not None:
            raise StreamDeletedError(stream_id, current, "append to")
        check_expected_version(stream_id, expected, current, exists=current > 0)
        raise AssertionError(f"append to `{stream_id}` wrote nothing and broke no rule")

    async def _claim_key(
        self, connection: AsyncConnection, stream_id: str, key: str, recorded_at: datetime
    ) -> AppendResult | None:
        """Claim the key, or return the result of the append that already holds it.

        On PostgreSQL a concurrent claim of the same key waits for the holder's transaction:
        if it commits, this one returns its result; if it rolls back, this one proceeds.
        """
        insert = pg_insert if self._postgres else sqlite_insert
        claimed = await connection.execute(
            insert(idempotency_keys_table)
            .values(stream_id=stream_id, idempotency_key=key, recorded_at=recorded_at)
            .on_conflict_do_nothing()
            .returning(idempotency_keys_table.c.stream_id)
        )
        if claimed.first() is not None:
            return None
        held = (await connection.execute(_KEY_RESULT.where(*_key(stream_id, key)))).one()
        return AppendResult(stream_id, *held)

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 0,
        limit: int | None = None,
        backwards: bool = False,
        *,
        skip_unknown: bool = False,
    ) -> Sequence[RecordedEvent]:
        check_stream_id(stream_id)
        sql_limit = None if skip_unknown else limit
        with unavailable_as_store_error(f"read stream `{stream_id}`"):
            rows = await stream_rows(
                self.uow, stream_id, from_version, sql_limit, backwards=backwards
            )
            if not rows:
                # deleted streams have no rows left; only then is the tombstone worth a look
                tombstone = _STREAM.where(streams_table.c.stream_id == stream_id)
                found = (await self.uow.connection.execute(tombstone)).one_or_none()
                if found is not None and found.deleted_at is not None:
                    raise StreamDeletedError(stream_id, found.version, "read")
                return []
        decoded = self._decode(rows, skip_unknown)
        return decoded if limit is None else decoded[:limit]

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        event_types: Collection[str | type] | None = None,
        *,
        skip_unknown: bool = False,
    ) -> Sequence[RecordedEvent]:
        names = type_names(self.serializer, event_types)
        found: list[RecordedEvent] = []
        while len(found) < limit:
            wanted = limit - len(found)
            with unavailable_as_store_error("read all events"):
                rows = await log_rows(self.uow, after_position, wanted, names)
            found.extend(self._decode(rows, skip_unknown))
            if len(rows) < wanted:
                break
            after_position = rows[-1][0]  # some were skipped as unknown: read on
        return found

    async def open_appends(self, limit: int = 10) -> list[OpenAppend]:
        """Transactions that appended and are still open, the one holding readers back first.

        PostgreSQL only (an empty list on SQLite, where a reader never waits for a writer).
        Readers of the global log stop below the first one's ``position_bound`` until it ends.
        """
        if not self._postgres:
            return []
        with unavailable_as_store_error("list open appends"):
            rows = await self.uow.connection.execute(text(OPEN_APPENDS), {"limit": limit})
            return [
                OpenAppend(
                    int(row.bound),
                    int(row.pid),
                    float(row.age or 0.0),
                    row.state or "",
                    row.application_name or "",
                )
                for row in rows
            ]

    # -- LogHeadReader: one indexed query each ---------------------------------------------

    async def log_heads(self) -> tuple[int, int]:
        return await sql_log_heads(self.uow)

    async def count_after(self, position: int) -> int:
        return await sql_count_after(self.uow, position)

    async def held_back_by(self) -> OpenAppend | None:
        if not self._postgres:
            return None  # one writer at a time: a reader never waits
        final, committed = await sql_log_heads(self.uow)
        if committed <= final:
            return None
        oldest = await self.open_appends(limit=1)
        return oldest[0] if oldest else None

    async def delete_stream(self, stream_id: str) -> None:
        check_stream_id(stream_id)
        connection = self.uow.connection
        insert = pg_insert if self._postgres else sqlite_insert
        deleted_at = now()
        with unavailable_as_store_error(f"delete stream `{stream_id}`"):
            upsert = insert(streams_table).values(
                stream_id=stream_id, version=0, deleted_at=deleted_at
            )
            await connection.execute(
                upsert.on_conflict_do_update(
                    index_elements=[streams_table.c.stream_id],
                    set_={"deleted_at": deleted_at},
                    where=streams_table.c.deleted_at.is_(None),
                )
            )
            await connection.execute(
                delete(events_table).where(events_table.c.stream_id == stream_id)
            )

    async def truncate_before(self, stream_id: str, version: int) -> None:
        check_stream_id(stream_id)
        with unavailable_as_store_error(f"truncate stream `{stream_id}`"):
            await self.uow.connection.execute(
                delete(events_table).where(
                    events_table.c.stream_id == stream_id,
                    events_table.c.stream_version < version,
                )
            )

    def _decode(self, rows: Sequence[Sequence[Any]], skip_unknown: bool) -> list[RecordedEvent]:
        return decode_rows(self.serializer, rows, skip_unknown)


def _key(stream_id: str, key: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return (
        idempotency_keys_table.c.stream_id == stream_id,
        idempotency_keys_table.c.idempotency_key == key,
    )
