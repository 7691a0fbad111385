"""PostgreSQL append: one statement checks the expected version, bumps it and inserts.

The same statement announces the transaction to readers of the global log before it takes
positions from the sequence, and takes them only once it holds the stream's row (see
docs/design/event-store-ordering.md and ``event_log``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeAlias

import msgspec
from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Insert,
    Integer,
    LargeBinary,
    Text,
    Uuid,
    bindparam,
    cast,
    column,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from dockyard.eventsourcing._codec import EventRow
from dockyard.eventsourcing._store import ExpectedVersion
from dockyard.sql._eventsourcing.event_log import key_sql, lower_bound_sql, positions
from dockyard.sql._eventsourcing.tables import EVENTS_CHANNEL, events_table, streams_table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["append_postgres"]


def _stream_cte(kind: str) -> Any:
    stream_id: Any = bindparam("sid")
    count = bindparam("n", type_=BigInteger())
    live = streams_table.c.deleted_at.is_(None)
    if kind == "create":
        statement: Any = (
            pg_insert(streams_table)
            .values(stream_id=stream_id, version=count)
            .on_conflict_do_nothing(index_elements=[streams_table.c.stream_id])
        )
    elif kind == "any":
        upsert = pg_insert(streams_table).values(stream_id=stream_id, version=count)
        statement = upsert.on_conflict_do_update(
            index_elements=[streams_table.c.stream_id],
            set_={"version": streams_table.c.version + upsert.excluded.version},
            where=live,
        )
    else:
        condition = [streams_table.c.stream_id == stream_id, live]
        if kind == "exact":
            condition.append(streams_table.c.version == bindparam("expected", type_=BigInteger()))
        statement = (
            update(streams_table).where(*condition).values(version=streams_table.c.version + count)
        )
    return statement.returning(streams_table.c.version).cte("stream")


def _announcement(mode: str) -> Any:
    """Announce this transaction to readers of the global log, before any ``nextval``.

    A one-row subquery of the insert's ``FROM``; the select list numbers a row only once the
    join has it, so after this ran. Its shared advisory lock's key carries a bound below every
    position the transaction takes; it is held until the transaction ends. The first append
    (``mode`` ``"first"`` or ``"notify"``) reads the bound from the sequence. Later ones
    (``"again"``) lock the key of the first append's first position, which the unit of work
    passes as ``bound``: every position they take is above it; it is a lookup in the
    session's own lock table once that key is held (from the second append when it equals the
    first bound, as it does unless another appender took a number in between); and it
    announces the transaction again if a rolled-back savepoint released the first lock (with
    the events that needed it).
    ``"notify"`` also queues ``NOTIFY dockyard_events`` for the commit (see
    ``CommitNotices.notify_inside``).

    A subquery rather than a ``MATERIALIZED`` CTE whose bound the insert returns: the CTE and
    the scalar subquery that read it back took a third of the statement's time on the server
    (docs/event-store.md, "The announcement in the statement's FROM").
    """
    again = mode == "again"
    bound = "CAST(:bound AS BIGINT)" if again else lower_bound_sql()
    notify = f", pg_notify('{EVENTS_CHANNEL}', '') AS notified" if mode == "notify" else ""
    # OFFSET 0: evaluated as a subquery of its own, once, never folded into the outer query
    announce = text(
        f"SELECT pg_advisory_xact_lock_shared({key_sql(bound)}) AS announced{notify} OFFSET 0"
    )
    if again:
        announce = announce.bindparams(bindparam("bound", type_=BigInteger()))
    names: list[Any] = [column("announced")]
    if notify:
        names.append(column("notified"))
    return announce.columns(*names).subquery("announce")


_COLUMNS = [column.name for column in events_table.columns]
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


def _insert(kind: str, mode: str, fields: Any, version: Any, more: Any = None) -> Insert:
    """``INSERT INTO dockyard_events ... SELECT`` the events, positions and versions.

    ``version`` is the event's stream version; ``more`` joins the rows of a several-event
    append, in order. Positions come from ``nextval`` in the select list, which runs for a row
    only once the join has it: after the stream's row is locked and the transaction announced.
    """
    stream, announce = _stream_cte(kind), _announcement(mode)
    source = select(
        positions.next_value(),
        fields["event_id"],
        bindparam("sid", type_=Text()),
        version(stream.c.version),
        *(fields[name] for name in list(_FIELDS)[1:]),
        bindparam("recorded_at", type_=DateTime(timezone=True)),
    )
    source = source.select_from(stream).join(announce, true())
    if more is not None:
        source = source.join(more, true())
    return (
        insert(events_table)
        .from_select(_COLUMNS, source)
        .add_cte(stream)
        .returning(events_table.c.global_position, events_table.c.stream_version)
    )


def _statement(kind: str, mode: str) -> Insert:
    rows = (
        func.unnest(*(cast(bindparam(f"{n}s"), ARRAY(t)) for n, t in _FIELDS.items()))
        .table_valued(*_FIELDS, with_ordinality="ord")
        .render_derived(name="u")
    )
    # ordered before the outer select list numbers them: positions follow versions
    ordered = select(rows).order_by(rows.c.ord).subquery("e")
    count = bindparam("n", type_=BigInteger())
    return _insert(kind, mode, ordered.c, lambda version: version - count + ordered.c.ord, ordered)


def _one_event_statement(kind: str, mode: str) -> Insert:
    """The same append for one event, with scalar parameters.

    Seven one-element arrays to encode and ``unnest`` cost a measurable share of an append
    (docs/event-store.md, "Where SQLAlchemy is bypassed").
    """
    fields = {name: bindparam(name, type_=t) for name, t in _FIELDS.items()}
    return _insert(kind, mode, fields, lambda version: version)


def _driver_sql(statement: Insert) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    # The same statement, compiled once for the raw driver: SQLAlchemy's execution path
    # measured a fifth of an append and more (docs/event-store.md).
    compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    assert compiled.positiontup is not None
    return str(compiled), tuple(compiled.positiontup), dict(compiled.params)


_Compiled: TypeAlias = tuple[Insert, tuple[str, tuple[str, ...], dict[str, Any]]]
# Per (one event?, kind, mode): the statement and its SQL for the driver, built at the first
# append of that shape. Building all 24 when the module loads took ~75 ms of every process
# that imports dockyard.sql (a CLI command, a worker), PostgreSQL or not.
_BUILT: dict[tuple[bool, str, str], _Compiled] = {}


def _built(one: bool, kind: str, mode: str) -> _Compiled:
    statement = (_one_event_statement if one else _statement)(kind, mode)
    built = _BUILT[one, kind, mode] = (statement, _driver_sql(statement))
    return built


def _kind(expected: int | ExpectedVersion) -> str:
    if expected is ExpectedVersion.ANY:
        return "any"
    if expected is ExpectedVersion.STREAM_EXISTS:
        return "exists"
    if expected is ExpectedVersion.NO_STREAM or expected == 0:
        return "create"
    return "exact"


async def append_postgres(
    uow: SqlUnitOfWork,
    stream_id: str,
    rows: list[EventRow],
    expected: int | ExpectedVersion,
    recorded_at: datetime,
) -> tuple[int, int, int, int] | None:
    """Insert the events; ``(first_version, last_version, first_pos, last_pos)`` or ``None``.

    ``None`` means nothing was written: the version check failed or the stream is deleted;
    the caller finds out which.
    """
    parameters: dict[str, Any] = {
        "sid": stream_id,  # not "stream_id": UPDATE would take it as a SET value
        "n": len(rows),
        "recorded_at": recorded_at,
    }
    kind = _kind(expected)
    if kind == "exact":
        parameters["expected"] = expected
    bound = uow.log_bound
    if bound is not None:
        mode = "again"
        parameters["bound"] = bound
    else:  # the transaction's first append: its commit wakes listeners of the log
        mode = "notify" if uow.database.notices.notify_inside(uow, EVENTS_CHANNEL) else "first"
    one = len(rows) == 1
    if one:
        (row,) = rows
        parameters.update(msgspec.structs.asdict(row))  # EventRow's fields are _FIELDS
    else:
        for name in _FIELDS:
            parameters[f"{name}s"] = [getattr(r, name) for r in rows]
    key = (one, kind, mode)
    statement, driver_sql = _BUILT.get(key) or _built(*key)
    driver = await uow.driver()
    if driver is not None:
        sql, names, constants = driver_sql
        given = constants | parameters
        inserted: Sequence[Sequence[Any]] = await driver.fetch(sql, *[given[n] for n in names])
    else:
        inserted = (await uow.connection.execute(statement, parameters)).all()
    if not inserted:
        return None
    if bound is None:
        uow.log_bound = inserted[0][0]
    return inserted[0][1], inserted[-1][1], inserted[0][0], inserted[-1][0]
