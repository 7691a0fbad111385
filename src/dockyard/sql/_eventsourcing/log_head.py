"""The head of the global log and counts past a position: ``SqlEventStore``'s ``LogHeadReader``."""

from __future__ import annotations

from sqlalchemy import func, select, text

from dockyard.sql._eventsourcing.tables import events_table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["sql_count_after", "sql_log_heads"]

_LOG_HEAD = text("SELECT head, pending FROM dockyard_log_head()")


async def sql_log_heads(uow: SqlUnitOfWork) -> tuple[int, int]:
    """The newest final and the newest committed global position (0 for an empty log).

    PostgreSQL: only positions below the log's horizon are final (see
    docs/design/event-store-ordering.md); SQLite has one writer, so all committed rows are.
    """
    connection = uow.connection
    if uow.dialect == "postgresql":
        final, newest = (await connection.execute(_LOG_HEAD)).one()
        return int(final), int(newest)
    value = (await connection.execute(select(func.max(events_table.c.global_position)))).scalar()
    return int(value or 0), int(value or 0)


async def sql_count_after(uow: SqlUnitOfWork, position: int) -> int:
    """How many final events lie above ``position``."""
    if uow.dialect == "postgresql":
        query = select(func.dockyard_count_after(position))
    else:
        query = (
            select(func.count())
            .select_from(events_table)
            .where(events_table.c.global_position > position)
        )
    return int((await uow.connection.execute(query)).scalar() or 0)
