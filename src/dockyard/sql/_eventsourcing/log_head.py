"""The head of the global log and counts past a position, for ``SqlEventStore``."""

from __future__ import annotations

from sqlalchemy import func, select, text

from dockyard.eventsourcing._store import OpenAppend
from dockyard.sql._eventsourcing.event_store import SqlEventStore
from dockyard.sql._eventsourcing.tables import events_table

__all__ = ["sql_count_after", "sql_held_back_by", "sql_log_head", "sql_log_heads"]

_LOG_HEAD = text("SELECT head, pending FROM dockyard_log_head()")


async def sql_log_head(store: object, *, committed: bool = False) -> int:
    """The newest final global position (0 for an empty log); any committed one if asked."""
    final, newest = await sql_log_heads(store)
    return newest if committed else final


async def sql_log_heads(store: object) -> tuple[int, int]:
    """The newest final and the newest committed global position (0 for an empty log).

    PostgreSQL: only positions below the log's horizon are final (see
    docs/design/event-store-ordering.md); SQLite has one writer, so all committed rows are.
    """
    assert isinstance(store, SqlEventStore)
    connection = store.uow.connection
    if store.uow.dialect == "postgresql":
        final, newest = (await connection.execute(_LOG_HEAD)).one()
        return int(final), int(newest)
    value = (await connection.execute(select(func.max(events_table.c.global_position)))).scalar()
    return int(value or 0), int(value or 0)


async def sql_count_after(store: object, position: int) -> int:
    """How many final events lie above ``position``."""
    assert isinstance(store, SqlEventStore)
    if store.uow.dialect == "postgresql":
        query = select(func.dockyard_count_after(position))
    else:
        query = (
            select(func.count())
            .select_from(events_table)
            .where(events_table.c.global_position > position)
        )
    return int((await store.uow.connection.execute(query)).scalar() or 0)


async def sql_held_back_by(store: object) -> OpenAppend | None:
    """The oldest open appender, when committed events wait behind it (PostgreSQL)."""
    assert isinstance(store, SqlEventStore)
    if store.uow.dialect != "postgresql":
        return None
    head, pending = (await store.uow.connection.execute(_LOG_HEAD)).one()
    if pending <= head:
        return None
    oldest = await store.open_appends(limit=1)
    return oldest[0] if oldest else None
