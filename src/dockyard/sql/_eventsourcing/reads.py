"""Reading rows of ``dockyard_events``: raw driver where measured faster, SQLAlchemy otherwise."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ARRAY, Text, cast, func, select
from sqlalchemy import column as sa_column

from dockyard.sql._eventsourcing import read_postgres as pg
from dockyard.sql._eventsourcing import sqlite as lite_sql
from dockyard.sql._eventsourcing.sqlite import fetch_rows
from dockyard.sql._eventsourcing.tables import events_table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["log_rows", "stream_rows"]

_COLUMNS = tuple(events_table.columns)
_NO_END = 2**62  # "from the end" for backwards reads


def _sqlite_limit(limit: int | None) -> int:
    return -1 if limit is None else limit  # SQLite: a negative LIMIT means none


async def stream_rows(
    uow: SqlUnitOfWork,
    stream_id: str,
    from_version: int,
    limit: int | None,
    *,
    backwards: bool,
) -> Sequence[Sequence[Any]]:
    """A stream's rows in ``dockyard_events`` column order, on the fastest path available."""
    if uow.dialect == "sqlite":
        if backwards:
            last = from_version if from_version > 0 else _NO_END
            return await fetch_rows(
                uow, lite_sql.READ_STREAM_BACKWARDS, (stream_id, last, _sqlite_limit(limit))
            )
        return await fetch_rows(
            uow, lite_sql.READ_STREAM_FORWARDS, (stream_id, from_version, _sqlite_limit(limit))
        )
    driver = await uow.driver()
    if driver is not None:
        if backwards:
            last = from_version if from_version > 0 else _NO_END
            rows: Sequence[Sequence[Any]] = await driver.fetch(
                pg.READ_STREAM_BACKWARDS, stream_id, last, limit
            )
        else:
            rows = await driver.fetch(pg.READ_STREAM_FORWARDS, stream_id, from_version, limit)
        return rows
    query = select(*_COLUMNS).where(events_table.c.stream_id == stream_id)
    if backwards:
        if from_version > 0:
            query = query.where(events_table.c.stream_version <= from_version)
        query = query.order_by(events_table.c.stream_version.desc())
    else:
        if from_version > 0:
            query = query.where(events_table.c.stream_version >= from_version)
        query = query.order_by(events_table.c.stream_version)
    if limit is not None:
        query = query.limit(limit)
    return (await uow.connection.execute(query)).all()


async def log_rows(
    uow: SqlUnitOfWork, after_position: int, limit: int, names: list[str]
) -> Sequence[Sequence[Any]]:
    """The global log's rows after a position, in ``dockyard_events`` column order."""
    if uow.dialect == "sqlite":
        if names:
            return await fetch_rows(
                uow, lite_sql.READ_ALL_OF_TYPES, (after_position, json.dumps(names), limit)
            )
        return await fetch_rows(uow, lite_sql.READ_ALL, (after_position, limit))
    # PostgreSQL: through dockyard_read_all(), which reads below the log's horizon in a
    # snapshot taken after it (docs/design/event-store-ordering.md)
    driver = await uow.driver()
    if driver is not None:
        if names:
            found: Sequence[Sequence[Any]] = await driver.fetch(
                pg.READ_ALL_OF_TYPES, after_position, limit, names
            )
        else:
            found = await driver.fetch(pg.READ_ALL, after_position, limit)
        return found
    wanted = cast(names or None, ARRAY(Text()))
    rows = func.dockyard_read_all(after_position, limit, wanted).table_valued(
        *(sa_column(c.name, c.type) for c in _COLUMNS)
    )
    query = select(*(rows.c[c.name] for c in _COLUMNS))
    return (await uow.connection.execute(query)).all()
