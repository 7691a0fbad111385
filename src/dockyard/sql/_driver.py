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
from sqlalchemy.pool import PoolProxiedConnection

__all__ = ["asyncpg_connection", "pooled_connection"]

_UNKNOWN = object()


async def pooled_connection(connection: AsyncConnection) -> PoolProxiedConnection:
    """The pooled DBAPI connection under ``connection`` (``get_raw_connection``, usually cheaper).

    ``get_raw_connection`` enters SQLAlchemy's greenlet in case it must reconnect; a connection
    that is open and valid has its pooled connection at hand, so only the others take it.
    """
    sync = connection.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        return sync.connection
    return await connection.get_raw_connection()


async def asyncpg_connection(connection: AsyncConnection) -> Any | None:
    """The asyncpg connection inside ``connection``'s transaction, or ``None``."""
    if not connection.in_transaction():  # after a commit, SQLAlchemy would autobegin too
        await connection.begin()
    pooled = await pooled_connection(connection)
    adapter = pooled.dbapi_connection
    start = getattr(adapter, "_start_transaction", None)
    begun = getattr(adapter, "_transaction", _UNKNOWN)
    if start is None or begun is _UNKNOWN:
        return None
    if begun is None:
        await start()
    return pooled.driver_connection
