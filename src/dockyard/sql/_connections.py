"""``HeldConnections``: the connections a ``Database`` keeps between units of work.

Where it can, a unit of work begins and ends its transaction on the driver itself and hands
its connection to the next unit of work instead of back through SQLAlchemy's pool
(docs/design/unit-of-work.md). This is the one place that decides whether it can
(``fast_path``) and that holds the connections (``checkout``, ``keep``); the database owns one,
its units of work and its ``CommitNotices`` use it.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool, StaticPool
from sqlalchemy.util import greenlet_spawn

__all__ = ["HeldConnections", "pool_capacity"]


class HeldConnections:
    """Idle connections of one engine, at most as many as its pool keeps open anyway."""

    __slots__ = ("_engine", "_idle", "_idle_size", "_own_begin_hooks", "raw_paths")

    def __init__(self, engine: AsyncEngine, *, raw_paths: bool) -> None:
        self._engine = engine.sync_engine
        # the database's own `begin` hook (SQLite's BEGIN IMMEDIATE) is registered by now
        self._own_begin_hooks = len(self._engine.dispatch.begin)
        self._idle: list[Connection] = []
        pool = self._engine.pool
        self._idle_size = (
            pool.size() if isinstance(pool, QueuePool) else int(isinstance(pool, StaticPool))
        )
        self.raw_paths = raw_paths
        """Whether SQLAlchemy's driver adapter is what the raw paths expect (``_driver.py``)."""

    def fast_path(self) -> bool:
        """Whether units of work may hold connections and run transactions on the driver.

        Not when that would skip something the user asked of the pool or the engine: a ping
        or a recycle on checkout, or listeners on checkout, return or transaction events.
        """
        if not self.raw_paths:
            return False
        engine = self._engine
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

    def quiet_begin(self) -> bool:
        """Whether SQLAlchemy's ``begin`` runs none of the user's hooks (which may do I/O, and
        so need SQLAlchemy's greenlet): then a unit of work may begin a transaction as
        SQLAlchemy sees it outside one (``uow.connection``). Always so on the fast path."""
        return len(self._engine.dispatch.begin) <= self._own_begin_hooks

    async def checkout(self) -> Connection:
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
            checked_out: Connection = await greenlet_spawn(self._engine.connect)
            if not _closed_by_server(checked_out):
                return checked_out
            await greenlet_spawn(_throw_away, checked_out)

    def keep(self, connection: Connection) -> bool:
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

    async def close(self) -> None:
        """Return every idle connection to the pool."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await greenlet_spawn(connection.close)

    def _pool_exhausted(self) -> bool:
        pool = self._engine.pool
        most = pool_capacity(self._engine)
        return isinstance(pool, QueuePool) and most is not None and pool.checkedout() >= most


def pool_capacity(engine: Engine) -> int | None:
    """How many connections ``engine``'s pool hands out at once; ``None``: no limit."""
    pool = engine.pool
    if isinstance(pool, StaticPool):
        return 1
    if not isinstance(pool, QueuePool):
        return None
    most = pool._max_overflow  # noqa: SLF001 - no public accessor; -1 means no limit
    return None if most < 0 else pool.size() + most


def _closed_by_server(connection: Connection) -> bool:
    """Whether asyncpg knows the connection is closed (aiosqlite's never are)."""
    is_closed = getattr(connection.connection.driver_connection, "is_closed", None)
    return bool(is_closed is not None and is_closed())


def _throw_away(connection: Connection) -> None:
    """Back to the pool for good: the pool opens a new one in its place."""
    connection.invalidate()
    connection.close()
