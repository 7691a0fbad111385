"""``Database``: one async engine per app, configured for the event store's needs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy.util
from sqlalchemy import Connection, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool, StaticPool
from sqlalchemy.util import greenlet_spawn

from dockyard.sql._driver import (
    begin_immediate,
    postgres_adapter_known,
    sqlite_adapter_known,
    sqlite_begin_hook_stands_aside,
)
from dockyard.sql._errors import unavailable_as_store_error
from dockyard.sql._event_log import event_log_ddl, old_triggers_ddl
from dockyard.sql._metadata import metadata
from dockyard.sql._notices import CommitNotices

if TYPE_CHECKING:  # the return hint of unit_of_work(); UnitOfWork imports this module
    from dockyard.sql._unit_of_work import UnitOfWork

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
        "_idle",
        "_idle_size",
        "_own_begin_hooks",
        "_raw_paths",
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
        self._own_begin_hooks = len(self.engine.sync_engine.dispatch.begin)
        # Connections held between units of work (docs/design/unit-of-work.md), at most as
        # many as the pool keeps open anyway.
        self._idle: list[Connection] = []
        pool = self.engine.sync_engine.pool
        self._idle_size = (
            pool.size() if isinstance(pool, QueuePool) else int(isinstance(pool, StaticPool))
        )
        self._raw_paths = sqlite_adapter_known() if sqlite else postgres_adapter_known()
        self.notices = CommitNotices(self)
        """PostgreSQL: ``NOTIFY`` after commits that wrote what listeners wait for."""

    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work; use it as ``async with database.unit_of_work() as uow:``."""
        from dockyard.sql._unit_of_work import UnitOfWork

        return UnitOfWork(self)

    async def create_tables(self) -> None:
        """Create dockyard's tables if missing (for demos and tests; use migrations in prod)."""
        await create_tables(self.engine)

    async def dispose(self) -> None:
        """Close every pooled connection (after sending the notifications still pending)."""
        await self.notices.close()
        idle, self._idle = self._idle, []
        for connection in idle:
            await greenlet_spawn(connection.close)
        await self.engine.dispose()

    def _fast_path(self) -> bool:
        """Whether units of work may hold connections and run transactions on the driver.

        Not when that would skip something the user asked of the pool or the engine: a ping
        or a recycle on checkout, or listeners on checkout, return or transaction events.
        """
        if not self._raw_paths:
            return False
        engine = self.engine.sync_engine
        pool, hooks = engine.pool, engine.dispatch
        pool_hooks = pool.dispatch
        return not (
            pool._pre_ping  # noqa: SLF001 - no public accessor
            or pool._recycle >= 0  # noqa: SLF001
            or len(hooks.begin) > self._own_begin_hooks
            or hooks.commit
            or hooks.rollback
            or pool_hooks.checkout
            or pool_hooks.checkin
            or pool_hooks.reset
        )

    def _pool_exhausted(self) -> bool:
        pool = self.engine.sync_engine.pool
        if not isinstance(pool, QueuePool):
            return False
        most = pool._max_overflow  # noqa: SLF001 - no public accessor; -1 means no limit
        return most >= 0 and pool.checkedout() >= pool.size() + most

    async def _checkout(self) -> Connection:
        """An idle connection, or a new checkout from the pool; never one the server closed
        while it waited (a restart, ``pg_terminate_backend``): each would fail a unit of work
        of its own, one after another, long after the outage."""
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.closed or connection.invalidated:
                continue
            if not _closed_by_server(connection):
                return connection
            await greenlet_spawn(_throw_away, connection)
        while True:  # at most once per connection the pool holds: a new one is open
            checked_out: Connection = await greenlet_spawn(self.engine.sync_engine.connect)
            if not _closed_by_server(checked_out):
                return checked_out
            await greenlet_spawn(_throw_away, checked_out)

    def _keep(self, connection: Connection) -> bool:
        """Hold a clean connection for the next unit of work, if there is room.

        Not while the pool has handed out all it may: someone (a unit of work, a lease
        heartbeat, a ``LISTEN``) may be waiting in the pool, and would wait ``pool_timeout``
        for a connection we keep idle here. Then it goes back to the pool.
        """
        idle = self._idle
        if (
            len(idle) < self._idle_size
            and not self._pool_exhausted()
            and not connection.closed
            and not connection.invalidated
            and not connection.in_transaction()
        ):
            idle.append(connection)
            return True
        return False


def _closed_by_server(connection: Connection) -> bool:
    """Whether asyncpg knows the connection is closed (aiosqlite's never are)."""
    is_closed = getattr(connection.connection.driver_connection, "is_closed", None)
    return bool(is_closed is not None and is_closed())


def _throw_away(connection: Connection) -> None:
    """Back to the pool for good: the pool opens a new connection in its place."""
    connection.invalidate()
    connection.close()


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


def _create_engine(url: URL, options: dict[str, Any]) -> AsyncEngine:
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        # One shared connection, or every connection would see its own empty database;
        # such a database serves one unit of work at a time.
        options.setdefault("poolclass", StaticPool)
    return create_async_engine(url, **options)


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
        # (create, execute, close) — measured ~100 µs of a ~300 µs unit of work. A unit of
        # work may have begun on the driver already: then there is nothing to send.
        if not sqlite_begin_hook_stands_aside():
            _await(begin_immediate(connection.connection.driver_connection))
