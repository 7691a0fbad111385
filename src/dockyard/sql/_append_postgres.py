"""PostgreSQL append: one statement checks the expected version, bumps it and inserts.

Global positions are ``(xid << 16) | n`` (see docs/design/event-store-ordering.md): readers
that only take positions below ``pg_snapshot_xmin(pg_current_snapshot()) << 16`` never skip
an event that commits late.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    DateTime,
    Insert,
    Integer,
    LargeBinary,
    Select,
    Text,
    Uuid,
    bindparam,
    cast,
    func,
    insert,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.eventsourcing._store import ExpectedVersion
from dockyard.eventsourcing.store._codec import EventRow
from dockyard.sql._driver import asyncpg_connection
from dockyard.sql._event_tables import events, streams

__all__ = ["EVENTS_PER_TRANSACTION", "append_postgres", "room_in_transaction", "visible_below"]

POSITION_BITS = 16
EVENTS_PER_TRANSACTION = 1 << POSITION_BITS


def _shifted(xid: ColumnElement[int]) -> ColumnElement[int]:
    return xid * literal_column(str(EVENTS_PER_TRANSACTION), BigInteger())


def _as_bigint(xid8: ColumnElement[Any]) -> ColumnElement[int]:
    return cast(cast(xid8, Text()), BigInteger())


def visible_below() -> ColumnElement[int]:
    """Positions below this were written by transactions that have all finished."""
    return _shifted(_as_bigint(func.pg_snapshot_xmin(func.pg_current_snapshot())))


def _stream_cte(kind: str) -> Any:
    stream_id: Any = bindparam("sid")
    count = bindparam("n", type_=BigInteger())
    live = streams.c.deleted_at.is_(None)
    if kind == "create":
        statement: Any = (
            pg_insert(streams)
            .values(stream_id=stream_id, version=count)
            .on_conflict_do_nothing(index_elements=[streams.c.stream_id])
        )
    elif kind == "any":
        upsert = pg_insert(streams).values(stream_id=stream_id, version=count)
        statement = upsert.on_conflict_do_update(
            index_elements=[streams.c.stream_id],
            set_={"version": streams.c.version + upsert.excluded.version},
            where=live,
        )
    else:
        condition = [streams.c.stream_id == stream_id, live]
        if kind == "exact":
            condition.append(streams.c.version == bindparam("expected", type_=BigInteger()))
        statement = update(streams).where(*condition).values(version=streams.c.version + count)
    return statement.returning(streams.c.version).cte("stream")


def _statement(kind: str) -> Insert:
    stream = _stream_cte(kind)
    count = bindparam("n", type_=BigInteger())
    xid = _as_bigint(func.pg_current_xact_id())
    low, high = _shifted(xid), _shifted(xid + 1)
    # the next free position in this transaction's range: only its own rows can be there
    base = (
        select(
            func.coalesce(func.max(events.c.global_position) + 1, low).label("start"),
            high.label("stop"),
        )
        .where(events.c.global_position >= low, events.c.global_position < high)
        .cte("base")
    )
    rows = (
        func.unnest(
            cast(bindparam("event_ids"), ARRAY(Uuid())),
            cast(bindparam("type_names"), ARRAY(Text())),
            cast(bindparam("schema_versions"), ARRAY(Integer())),
            cast(bindparam("datas"), ARRAY(LargeBinary())),
            cast(bindparam("correlation_ids"), ARRAY(Text())),
            cast(bindparam("causation_ids"), ARRAY(Text())),
            cast(bindparam("occurred_ats"), ARRAY(DateTime(timezone=True))),
        )
        .table_valued(
            "event_id",
            "type_name",
            "schema_version",
            "data",
            "correlation_id",
            "causation_id",
            "occurred_at",
            with_ordinality="ord",
        )
        .render_derived(name="e")
    )
    source = (
        select(
            base.c.start + rows.c.ord - 1,
            rows.c.event_id,
            bindparam("sid"),
            stream.c.version - count + rows.c.ord,
            rows.c.type_name,
            rows.c.schema_version,
            rows.c.data,
            rows.c.correlation_id,
            rows.c.causation_id,
            rows.c.occurred_at,
            bindparam("recorded_at", type_=DateTime(timezone=True)),
        )
        .select_from(stream)
        .join(base, true())
        .join(rows, true())
        .where(base.c.start + count <= base.c.stop)
    )
    columns = [
        "global_position",
        "event_id",
        "stream_id",
        "stream_version",
        "type_name",
        "schema_version",
        "data",
        "correlation_id",
        "causation_id",
        "occurred_at",
        "recorded_at",
    ]
    return (
        insert(events)
        .from_select(columns, source)
        .add_cte(stream, base)
        .returning(events.c.global_position, events.c.stream_version)
    )


_STATEMENTS = {kind: _statement(kind) for kind in ("create", "any", "exists", "exact")}


def _driver_sql(statement: Insert) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    # The same statement, compiled once for the raw driver: SQLAlchemy's execution path
    # measured 21 % of an append (docs/event-store.md).
    compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    assert compiled.positiontup is not None
    return str(compiled), tuple(compiled.positiontup), dict(compiled.params)


_DRIVER_SQL = {kind: _driver_sql(statement) for kind, statement in _STATEMENTS.items()}


def _room() -> Select[int]:
    xid = _as_bigint(func.pg_current_xact_id())
    low, high = _shifted(xid), _shifted(xid + 1)
    used = func.coalesce(func.max(events.c.global_position) + 1, low)
    return select(high - used).where(
        events.c.global_position >= low, events.c.global_position < high
    )


_ROOM = _room()


async def room_in_transaction(connection: AsyncConnection) -> int:
    """How many more events the current transaction can append."""
    room: int = (await connection.execute(_ROOM)).scalar_one()
    return room


def _kind(expected: int | ExpectedVersion) -> str:
    if expected is ExpectedVersion.ANY:
        return "any"
    if expected is ExpectedVersion.STREAM_EXISTS:
        return "exists"
    if expected is ExpectedVersion.NO_STREAM or expected == 0:
        return "create"
    return "exact"


async def append_postgres(
    connection: AsyncConnection,
    stream_id: str,
    rows: list[EventRow],
    expected: int | ExpectedVersion,
    recorded_at: datetime,
) -> tuple[int, int, int, int] | None:
    """Insert the events; ``(first_version, last_version, first_pos, last_pos)`` or ``None``.

    ``None`` means nothing was written: the version check failed, the stream is deleted, or
    the transaction's position range is full; the caller finds out which.
    """
    parameters: dict[str, Any] = {
        "sid": stream_id,  # not "stream_id": UPDATE would take it as a SET value
        "n": len(rows),
        "event_ids": [r.event_id for r in rows],
        "type_names": [r.type_name for r in rows],
        "schema_versions": [r.schema_version for r in rows],
        "datas": [r.data for r in rows],
        "correlation_ids": [r.correlation_id for r in rows],
        "causation_ids": [r.causation_id for r in rows],
        "occurred_ats": [r.occurred_at for r in rows],
        "recorded_at": recorded_at,
    }
    kind = _kind(expected)
    if kind == "exact":
        parameters["expected"] = expected
    driver = await asyncpg_connection(connection)
    if driver is not None:
        sql, names, constants = _DRIVER_SQL[kind]
        arguments = [parameters[n] if n in parameters else constants[n] for n in names]
        inserted: Sequence[Sequence[Any]] = await driver.fetch(sql, *arguments)
    else:
        inserted = (await connection.execute(_STATEMENTS[kind], parameters)).all()
    if not inserted:
        return None
    return inserted[0][1], inserted[-1][1], inserted[0][0], inserted[-1][0]
