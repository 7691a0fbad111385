"""``UnitOfWork``: one connection and one transaction, shared by everything in a scope."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import greenlet_spawn

from dockyard.exceptions import UnitOfWorkError
from dockyard.sql._database import Database
from dockyard.sql._errors import unavailable_as_store_error

__all__ = ["UnitOfWork"]


class UnitOfWork:
    """Owns one connection and its transaction for one request scope.

    The event store, the outbox and the application's own repositories all execute on
    ``connection``, so their writes commit or roll back together. As an async context manager
    it begins on entry and, on exit, commits if the block raised nothing and rolls back if
    it did. After ``commit()`` or ``rollback()`` the next statement begins a new transaction.
    """

    __slots__ = ("_connection", "database")

    def __init__(self, database: Database) -> None:
        self.database = database
        self._connection: AsyncConnection | None = None

    @property
    def connection(self) -> AsyncConnection:
        """The connection every writer of this unit of work must use."""
        if self._connection is None:
            raise UnitOfWorkError("use the connection", "has not begun or is already closed")
        return self._connection

    @property
    def dialect(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self.database.dialect

    async def begin(self) -> None:
        """Check out a connection and begin a transaction."""
        if self._connection is not None:
            raise UnitOfWorkError("begin", "has already begun")
        engine = self.database.engine
        with unavailable_as_store_error("begin a unit of work"):
            # checkout and begin in one trip into SQLAlchemy's greenlet, not two
            connection = await greenlet_spawn(_connect_and_begin, engine.sync_engine)
        self._connection = AsyncConnection(engine, connection)

    async def commit(self) -> None:
        """Commit everything written so far."""
        with unavailable_as_store_error("commit a unit of work"):
            await self.connection.commit()

    async def rollback(self) -> None:
        """Discard everything written since the last commit."""
        with unavailable_as_store_error("roll back a unit of work"):
            await self.connection.rollback()

    async def close(self) -> None:
        """Roll back anything uncommitted and return the connection to the pool."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with unavailable_as_store_error("close a unit of work"):
                await connection.close()

    async def __aenter__(self) -> Self:
        await self.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._connection is None:
            if exc_type is None:
                _ = self.connection  # raises UnitOfWorkError: nothing to commit
            return
        connection, self._connection = self._connection.sync_connection, None
        assert connection is not None
        # the end of the transaction and the return to the pool in one trip into the greenlet
        if exc_type is None:
            with unavailable_as_store_error("commit a unit of work"):
                await greenlet_spawn(_end, connection, connection.commit)
        else:
            with unavailable_as_store_error("roll back a unit of work"):
                await greenlet_spawn(_end, connection, connection.rollback)


def _connect_and_begin(engine: Engine) -> Connection:
    connection = engine.connect()
    try:
        connection.begin()
    except BaseException:
        connection.close()
        raise
    return connection


def _end(connection: Connection, end_transaction: Callable[[], None]) -> None:
    try:
        end_transaction()
    finally:
        connection.close()  # the pool's reset (ROLLBACK) on return stays as it was
