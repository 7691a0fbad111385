"""The raw asyncpg connection under a unit of work, for the hot paths that measured faster.

SQLAlchemy's asyncpg adapter begins its transaction lazily, on the first statement it runs.
A statement sent straight to the driver before that would run outside the unit of work's
transaction, so ``asyncpg_connection`` begins the adapter's transaction first (the same BEGIN
SQLAlchemy would send; commit and rollback stay with SQLAlchemy). If the adapter does not look
the way this code expects (a future SQLAlchemy), it returns ``None`` and the caller uses the
SQLAlchemy path: slower, never wrong.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["asyncpg_connection"]

_UNKNOWN = object()


async def asyncpg_connection(connection: AsyncConnection) -> Any | None:
    """The asyncpg connection inside ``connection``'s transaction, or ``None``."""
    if not connection.in_transaction():  # after a commit, SQLAlchemy would autobegin too
        await connection.begin()
    pooled = await connection.get_raw_connection()
    adapter = pooled.dbapi_connection
    start = getattr(adapter, "_start_transaction", None)
    begun = getattr(adapter, "_transaction", _UNKNOWN)
    if start is None or begun is _UNKNOWN:
        return None
    if begun is None:
        await start()
    return pooled.driver_connection
