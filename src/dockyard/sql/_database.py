"""``Database``: one async engine per app, configured for the event store's needs."""

from __future__ import annotations

from typing import Any

import sqlalchemy.util
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from dockyard.exceptions import DatabaseUrlError, MissingExtraError
from dockyard.sql._connections import HeldConnections
from dockyard.sql._driver import (
    begin_immediate,
    begin_owed,
    paid_begin,
    postgres_adapter_known,
    sqlite_adapter_known,
    sqlite_begin_hook_stands_aside,
)
from dockyard.sql._errors import unavailable_as_store_error
from dockyard.sql._eventsourcing.event_log import event_log_ddl, old_triggers_ddl
from dockyard.sql._metadata import metadata
from dockyard.sql._notices import CommitNotices
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["Database", "create_tables", "drop_tables"]


class Database:
    """Wraps an ``AsyncEngine`` (SQLite via aiosqlite or PostgreSQL via asyncpg).

    SQLite connections are set up for one writer at a time done right: WAL journal, a busy
    timeout, and every transaction opened with ``BEGIN IMMEDIATE`` so two writers queue for
    the lock instead of failing with "database is locked" half-way through.

    Example:
        ```python
        database = Database("postgresql+asyncpg://app@localhost/app")
        async with database.unit_of_work() as uow:
            await SqlEventStore(uow).append("Order-1", [OrderPlaced(...)], NO_STREAM)
        ```
    """

    __slots__ = (
        "connections",
        "dialect",
        "engine",
        "notices",
        "sqlalchemy_dialect",
    )

    def __init__(self, url: str | URL | AsyncEngine, **engine_options: Any) -> None:
        if isinstance(url, AsyncEngine):
            self.engine = url
        else:
            self.engine = _create_engine(make_url(url), engine_options)
        self.sqlalchemy_dialect = self.engine.dialect
        self.dialect: str = self.sqlalchemy_dialect.name
        """``"postgresql"`` or ``"sqlite"``."""
        sqlite = self.dialect == "sqlite"
        if sqlite:
            _configure_sqlite(self.engine)
        raw_paths = sqlite_adapter_known() if sqlite else postgres_adapter_known()
        self.connections = HeldConnections(self.engine, raw_paths=raw_paths)
        """The connections units of work keep between them (``dockyard.sql`` internals)."""
        self.notices = CommitNotices(self)
        """PostgreSQL: ``NOTIFY`` after commits that wrote what listeners wait for."""

    def unit_of_work(self) -> SqlUnitOfWork:
        """A new unit of work; use it as ``async with database.unit_of_work() as uow:``."""
        return SqlUnitOfWork(self)

    async def create_tables(self) -> None:
        """Create dockyard's tables if missing (for demos and tests; use migrations in prod)."""
        await create_tables(self.engine)

    async def dispose(self) -> None:
        """Close every pooled connection (after sending the notifications still pending)."""
        await self.notices.close()
        await self.connections.close()
        await self.engine.dispose()


async def create_tables(engine: AsyncEngine) -> None:
    """Create every table of ``dockyard.sql.metadata`` that does not exist yet."""
    with unavailable_as_store_error("create dockyard's tables"):
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            if connection.dialect.name == "postgresql":
                # a database made by an earlier dockyard has the tables: (re)create the
                # global log's functions, move the position sequence past its events and
                # drop the NOTIFY triggers
                for statement in (*event_log_ddl, *old_triggers_ddl):
                    await connection.exec_driver_sql(statement)


async def drop_tables(engine: AsyncEngine) -> None:
    """Drop every table of ``dockyard.sql.metadata`` (tests and demos only)."""
    with unavailable_as_store_error("drop dockyard's tables"):
        async with engine.begin() as connection:
            await connection.run_sync(metadata.drop_all)


_ASYNC_DRIVERS = {"postgresql": ("asyncpg", "postgres"), "sqlite": ("aiosqlite", "sqlite")}
"""Per backend: the asyncio driver dockyard runs on, and the extra that installs it."""


def _create_engine(url: URL, options: dict[str, Any]) -> AsyncEngine:
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:  # there is no extra to name: say what dockyard runs on
        raise DatabaseUrlError(url.drivername)
    if url.get_driver_name() != _ASYNC_DRIVERS[backend][0]:
        if "+" in url.drivername:  # a driver named, and not ours
            raise DatabaseUrlError(url.drivername, f"{backend}+{_ASYNC_DRIVERS[backend][0]}")
        url = _async_url(url, backend)
    if backend == "sqlite" and url.database in (None, "", ":memory:"):
        # One shared connection, or every connection would see its own empty database;
        # such a database serves one unit of work at a time.
        options.setdefault("poolclass", StaticPool)
    try:
        return create_async_engine(url, **options)
    except ModuleNotFoundError as missing:
        driver, extra = _ASYNC_DRIVERS[backend]
        feature = f"A `{url.drivername}://` database"
        raise MissingExtraError(feature, driver, extra) from missing


def _async_url(url: URL, backend: str) -> URL:
    """``postgresql://`` → ``postgresql+asyncpg://``, ``sqlite://`` → ``sqlite+aiosqlite://``.

    A plain scheme means "this database", as in ``psql``'s and most tools' URLs; SQLAlchemy
    would pick a sync driver (psycopg2, pysqlite), which cannot run under asyncio, and
    dockyard's fast paths are asyncpg's and aiosqlite's. Query options stay.
    """
    return url.set(drivername=f"{backend}+{_ASYNC_DRIVERS[backend][0]}")


# Runs an awaitable from SQLAlchemy's sync event hooks (inside its greenlet); named
# ``await_`` since SQLAlchemy 2.1, ``await_only`` before.
_await: Any = getattr(sqlalchemy.util, "await_", None) or sqlalchemy.util.await_only


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: object) -> None:
        # Let us emit BEGIN ourselves (the driver would otherwise BEGIN DEFERRED lazily).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Any) -> None:
        # Straight to aiosqlite: one hop to its thread, where a SQLAlchemy cursor takes three
        # (create, execute, close), a third of a unit of work (docs/event-store.md). A unit of
        # work may have begun on the driver already: then there is nothing to send.
        if not sqlite_begin_hook_stands_aside():
            _await(begin_immediate(connection.connection.driver_connection))

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def on_statement(
        connection: Any,
        _cursor: object,
        _statement: str,
        _parameters: object,
        _context: object,
        _executemany: bool,
    ) -> None:
        # A unit of work handed out `uow.connection` inside a transaction it began without
        # I/O (docs/design/unit-of-work.md): its BEGIN goes before the first statement.
        if begin_owed(connection):
            _await(begin_immediate(connection.connection.driver_connection))
            paid_begin(connection)
