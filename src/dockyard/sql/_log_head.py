"""The head of the global log and counts past a position, for ``SqlEventStore``."""

from __future__ import annotations

from sqlalchemy import func, select, text

from dockyard.sql._event_store import SqlEventStore
from dockyard.sql._event_tables import events

__all__ = ["sql_count_after", "sql_log_head"]

_LOG_HEAD = text("SELECT head, pending FROM dockyard_log_head()")


async def sql_log_head(store: object, *, committed: bool = False) -> int:
    """The newest final global position (0 for an empty log); any committed one if asked.

    PostgreSQL: only positions below the log's horizon are final (see
    docs/design/event-store-ordering.md); SQLite has one writer, so all committed rows are.
    """
    assert isinstance(store, SqlEventStore)
    connection = store.uow.connection
    if store.uow.dialect == "postgresql":
        head, pending = (await connection.execute(_LOG_HEAD)).one()
        return int(pending if committed else head)
    value = (await connection.execute(select(func.max(events.c.global_position)))).scalar()
    return int(value or 0)


async def sql_count_after(store: object, position: int) -> int:
    """How many final events lie above ``position``."""
    assert isinstance(store, SqlEventStore)
    if store.uow.dialect == "postgresql":
        query = select(func.dockyard_count_after(position))
    else:
        query = select(func.count()).select_from(events).where(events.c.global_position > position)
    return int((await store.uow.connection.execute(query)).scalar() or 0)
