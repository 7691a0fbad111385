"""``UnitOfWork``: one connection and one transaction, shared by everything in a scope."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncConnection

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
        with unavailable_as_store_error("begin a unit of work"):
            connection = await self.database.engine.connect()
            try:
                await connection.begin()
            except BaseException:
                await connection.close()
                raise
        self._connection = connection

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
        try:
            if exc_type is None:
                await self.commit()
            elif self._connection is not None:
                await self.rollback()
        finally:
            await self.close()
