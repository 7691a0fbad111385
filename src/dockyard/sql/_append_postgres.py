"""PostgreSQL append: one statement checks the expected version, bumps it and inserts.

Global positions are ``(xid << 16) | n`` (see docs/design/event-store-ordering.md): readers
that only take positions below ``pg_snapshot_xmin(pg_current_snapshot()) << 16`` never skip
an event that commits late.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
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

from dockyard.eventsourcing._store import ExpectedVersion
from dockyard.eventsourcing.store._codec import EventRow
from dockyard.sql._event_tables import events, streams
from dockyard.sql._unit_of_work import UnitOfWork

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


def _base_cte(counted: bool) -> Any:
    """The first free position in this transaction's range, and the range's end.

    ``counted``: the unit of work counted the positions it used so far in this transaction
    (the ``offset`` parameter). Otherwise: one past the largest position in the range, which
    only this transaction's own rows can hold (an index probe, ~7 % of an append).
    """
    xid = _as_bigint(func.pg_current_xact_id())
    low, high = _shifted(xid), _shifted(xid + 1)
    if counted:
        start = low + bindparam("offset", type_=BigInteger())
        return select(start.label("start"), high.label("stop")).cte("base")
    return (
        select(
            func.coalesce(func.max(events.c.global_position) + 1, low).label("start"),
            high.label("stop"),
        )
        .where(events.c.global_position >= low, events.c.global_position < high)
        .cte("base")
    )


_COLUMNS = [column.name for column in events.columns]
# the per-event values, in table order; an append of several binds each as an array, "<name>s"
_FIELDS: dict[str, Any] = {
    "event_id": Uuid(),
    "type_name": Text(),
    "schema_version": Integer(),
    "data": LargeBinary(),
    "correlation_id": Text(),
    "causation_id": Text(),
    "occurred_at": DateTime(timezone=True),
}


def _insert(
    kind: str, counted: bool, fields: Any, first: Any, version: Any, more: Any = None
) -> Insert:
    """``INSERT INTO dockyard_events ... SELECT`` the events, positions and versions.

    ``first`` is the start of this transaction's free range plus the event's offset,
    ``version`` the event's stream version; ``more`` joins the rows of a several-event append.
    """
    stream, base = _stream_cte(kind), _base_cte(counted)
    source = select(
        first(base.c.start),
        fields["event_id"],
        bindparam("sid", type_=Text()),
        version(stream.c.version),
        *(fields[name] for name in list(_FIELDS)[1:]),
        bindparam("recorded_at", type_=DateTime(timezone=True)),
    )
    source = source.select_from(stream).join(base, true())
    count: Any = 1
    if more is not None:
        source, count = source.join(more, true()), bindparam("n", type_=BigInteger())
    return (
        insert(events)
        .from_select(_COLUMNS, source.where(base.c.start + count <= base.c.stop))
        .add_cte(stream, base)
        .returning(events.c.global_position, events.c.stream_version)
    )


def _statement(kind: str, counted: bool) -> Insert:
    rows = (
        func.unnest(*(cast(bindparam(f"{n}s"), ARRAY(t)) for n, t in _FIELDS.items()))
        .table_valued(*_FIELDS, with_ordinality="ord")
        .render_derived(name="e")
    )
    count = bindparam("n", type_=BigInteger())
    return _insert(
        kind,
        counted,
        rows.c,
        lambda start: start + rows.c.ord - 1,
        lambda version: version - count + rows.c.ord,
        rows,
    )


def _one_event_statement(kind: str, counted: bool) -> Insert:
    """The same append for one event, with scalar parameters.

    Seven one-element arrays to encode and ``unnest`` cost ~70 µs of a ~500 µs append on the
    development machine (docs/design/unit-of-work.md).
    """
    fields = {name: bindparam(name, type_=t) for name, t in _FIELDS.items()}
    return _insert(kind, counted, fields, lambda start: start, lambda version: version)


_KEYS = [
    (kind, counted) for kind in ("create", "any", "exists", "exact") for counted in (True, False)
]
_STATEMENTS = {key: _statement(*key) for key in _KEYS}
_ONE_EVENT_STATEMENTS = {key: _one_event_statement(*key) for key in _KEYS}


def _driver_sql(statement: Insert) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    # The same statement, compiled once for the raw driver: SQLAlchemy's execution path
    # measured 21 % of an append (docs/event-store.md).
    compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    assert compiled.positiontup is not None
    return str(compiled), tuple(compiled.positiontup), dict(compiled.params)


_DRIVER_SQL = {key: _driver_sql(statement) for key, statement in _STATEMENTS.items()}
_ONE_EVENT_DRIVER_SQL = {
    key: _driver_sql(statement) for key, statement in _ONE_EVENT_STATEMENTS.items()
}


def _room() -> Select[int]:
    xid = _as_bigint(func.pg_current_xact_id())
    low, high = _shifted(xid), _shifted(xid + 1)
    used = func.coalesce(func.max(events.c.global_position) + 1, low)
    return select(high - used).where(
        events.c.global_position >= low, events.c.global_position < high
    )


_ROOM = _room()


async def room_in_transaction(uow: UnitOfWork) -> int:
    """How many more events the current transaction can append."""
    room: int = (await uow.connection.execute(_ROOM)).scalar_one()
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
    uow: UnitOfWork,
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
        "recorded_at": recorded_at,
    }
    kind = _kind(expected)
    if kind == "exact":
        parameters["expected"] = expected
    # Positions this unit of work used in this transaction, counted on our side. Reserved
    # before the statement runs: one that writes nothing leaves a gap, never a duplicate.
    # Past the range, every later append of the transaction probes the range instead.
    offset = uow.positions_taken
    counted = offset + len(rows) <= EVENTS_PER_TRANSACTION
    uow.positions_taken = offset + len(rows) if counted else EVENTS_PER_TRANSACTION
    key = (kind, counted)
    if counted:
        parameters["offset"] = offset
    if len(rows) == 1:
        (row,) = rows
        parameters.update(msgspec.structs.asdict(row))  # EventRow's fields are _FIELDS
        statement, driver_sql = _ONE_EVENT_STATEMENTS[key], _ONE_EVENT_DRIVER_SQL[key]
    else:
        for name in _FIELDS:
            parameters[f"{name}s"] = [getattr(r, name) for r in rows]
        statement, driver_sql = _STATEMENTS[key], _DRIVER_SQL[key]
    driver = await uow.driver()
    if driver is not None:
        sql, names, constants = driver_sql
        given = constants | parameters
        inserted: Sequence[Sequence[Any]] = await driver.fetch(sql, *[given[n] for n in names])
    else:
        inserted = (await uow.connection.execute(statement, parameters)).all()
    if not inserted:
        return None
    return inserted[0][1], inserted[-1][1], inserted[0][0], inserted[-1][0]
