"""The head of the global log and counts past a position, for ``SqlEventStore``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from dockyard.sql._append_postgres import visible_below
from dockyard.sql._event_store import SqlEventStore
from dockyard.sql._event_tables import events

__all__ = ["sql_count_after", "sql_log_head"]


def _final(store: SqlEventStore, query: Any) -> Any:
    # PostgreSQL: only positions below the oldest running writer are final (see
    # docs/design/event-store-ordering.md); SQLite has one writer, so all committed rows are.
    if store.uow.dialect == "postgresql":
        return query.where(events.c.global_position < visible_below())
    return query


async def sql_log_head(store: object, *, committed: bool = False) -> int:
    """The newest final global position (0 for an empty log); any committed one if asked."""
    assert isinstance(store, SqlEventStore)
    query = select(func.max(events.c.global_position))
    if not committed:
        query = _final(store, query)
    value = (await store.uow.connection.execute(query)).scalar()
    return int(value or 0)


async def sql_count_after(store: object, position: int) -> int:
    """How many final events lie above ``position``."""
    assert isinstance(store, SqlEventStore)
    query = _final(
        store, select(func.count()).select_from(events).where(events.c.global_position > position)
    )
    return int((await store.uow.connection.execute(query)).scalar() or 0)
