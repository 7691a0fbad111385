"""``HeldConnections``: the connections a ``Database`` keeps between units of work.

Where it can, a unit of work begins and ends its transaction on the driver itself and hands
its connection to the next unit of work instead of back through SQLAlchemy's pool
(docs/design/unit-of-work.md). This is the one place that decides whether it can
(``fast_path``) and that holds the connections (``checkout``, ``keep``); the database owns one,
its units of work and its ``CommitNotices`` use it.

When the pool has handed out all it may, a unit of work that needs a connection waits here for
one a unit of work is about to give back (``checkout``), and gets it straight from that unit of
work's hands (``keep``), instead of both going through SQLAlchemy's pool and its greenlet
(measured: a quarter of a saga's CPU at 50 in flight on a pool of 10). Whoever waits in the pool
itself (a lease heartbeat, a ``LISTEN``, the user's own ``engine.connect()``) comes first: a
connection is handed over only while nobody waits there. See docs/design/unit-of-work.md,
"Handing connections over".
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import Pool, QueuePool, StaticPool
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.queue import AsyncAdaptedQueue

__all__ = ["HeldConnections", "pool_capacity"]


class HeldConnections:
    """Idle connections of one engine, at most as many as its pool keeps open anyway, and the
    units of work waiting for one another's connections while the pool is exhausted."""

    __slots__ = (
        "__weakref__",
        "_closing",
        "_engine",
        "_idle",
        "_idle_size",
        "_lent",
        "_own_begin_hooks",
        "_waiters",
        "raw_paths",
    )

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
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        """Checkouts waiting for a connection a unit of work gives back (oldest first)."""
        self._lent: weakref.WeakSet[Connection] = weakref.WeakSet()
        """Connections ``checkout`` handed out that ``keep`` has not had back."""
        self._closing: set[asyncio.Task[None]] = set()
        # Every connection that goes back to the pool passes its `checkin` event, whichever
        # path closed it: a waiter that no lent connection will reach any more goes there too.
        # `fast_path` counts this one listener as dockyard's (a pool recreated by `dispose`
        # keeps its listeners).
        event.listen(pool, "checkin", _on_checkin(weakref.ref(self)))

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
            or len(pool_hooks.checkin) > 1  # one is ours (`__init__`)
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
                self._lent.add(connection)
                return connection
            await greenlet_spawn(_throw_away, connection)
        if self._pool_exhausted():
            handed = await self._wait_for_handover()
            if handed is not None:
                return handed
        while True:  # at most once per connection the pool holds: a new one is open
            checked_out: Connection = await greenlet_spawn(self._engine.connect)
            if not _closed_by_server(checked_out):
                self._lent.add(checked_out)
                return checked_out
            await greenlet_spawn(_throw_away, checked_out)

    async def _wait_for_handover(self) -> Connection | None:
        """A connection a unit of work gives back, or ``None``: take one from the pool.

        Waits only while some lent connection is open: each that comes back through ``keep``
        goes to the oldest waiter, and comes back again after that one's unit of work, so the
        waiters are served one after another by the connections dockyard holds. When the last
        of them goes to the pool instead, the pool. Past the pool's ``pool_timeout`` it raises
        what the pool raises then.
        """
        waiters = self._waiters
        if not self._any_coming_back():
            return None
        future: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        pool = self._engine.pool
        timeout = _pool_timeout(pool)
        try:
            async with asyncio.timeout(timeout):
                handed = await future
        except TimeoutError:
            _forget(waiters, future)
            raise _pool_timed_out(pool, timeout) from None
        except BaseException:
            _forget(waiters, future)
            if future.done() and not future.cancelled():
                given = future.result()
                if given is not None:  # handed over as we were cancelled: to the next one
                    self._lent.discard(given)
                    self._pass_on(given)
            raise
        if handed is not None and _closed_by_server(handed):
            self._lent.discard(handed)
            await greenlet_spawn(_throw_away, handed)
            return None
        return handed

    def keep(self, connection: Connection) -> bool:
        """Hand a clean connection to a waiting unit of work, or hold it for the next one if
        there is room; ``False``: the caller returns it to the pool.

        Never while someone waits in the pool itself (a lease heartbeat, a ``LISTEN``, the
        user's ``engine.connect()``): the pool's waiters come first. Not kept idle while the
        pool has handed out all it may: someone may come to wait in the pool, and would wait
        ``pool_timeout`` for a connection idle here.
        """
        self._lent.discard(connection)
        if connection.closed or connection.invalidated or connection.in_transaction():
            return False
        waiters = self._waiters
        while waiters and not self._pool_has_waiters():
            waiter = waiters.popleft()
            if not waiter.done():
                self._lent.add(connection)
                waiter.set_result(connection)
                return True
        idle = self._idle
        if len(idle) < self._idle_size and not self._pool_exhausted():
            idle.append(connection)
            return True
        return False

    def _pass_on(self, connection: Connection) -> None:
        """``keep``, or back to the pool in a task of its own (a waiter cancelled with a
        connection in hand cannot await its return)."""
        if self.keep(connection):
            return
        task = asyncio.get_running_loop().create_task(greenlet_spawn(connection.close))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _any_coming_back(self) -> bool:
        """Whether a lent connection is open: it will come back through ``keep`` or the pool."""
        return any(not c.closed and not c.invalidated for c in self._lent)

    def after_checkin(self) -> None:
        """A connection went back to the pool: the oldest waiter takes its place there if the
        pool has room again, and when no lent connection is open any more, every waiter goes
        to the pool (nothing would come to them here)."""
        waiters = self._waiters
        while waiters and waiters[0].done():
            waiters.popleft()
        if waiters and not self._pool_exhausted():
            waiters.popleft().set_result(None)
        if waiters and not self._any_coming_back():
            self._waiters = deque()
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _pool_has_waiters(self) -> bool:
        """Whether anyone waits in SQLAlchemy's pool; ``True`` if its queue is not where this
        looks (then nothing is handed over: the pool serves everyone, as without this)."""
        pool = self._engine.pool
        if not isinstance(pool, QueuePool):
            return False
        queue = getattr(pool, "_pool", None)
        if not isinstance(queue, AsyncAdaptedQueue):
            return True
        # made on first use (memoized in the instance): nobody has waited yet if it is absent
        inner = vars(queue).get("_queue")
        if inner is None:
            return False
        getters = getattr(inner, "_getters", None)  # asyncio.Queue's waiting `get`s
        if getters is None:
            return True
        return any(not getter.done() for getter in getters)

    async def close(self) -> None:
        """Return every idle connection to the pool; send waiters to the pool."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await greenlet_spawn(connection.close)
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

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


def _pool_timeout(pool: Pool) -> float:
    timeout = getattr(pool, "_timeout", None)  # QueuePool's `pool_timeout`
    return float(timeout) if isinstance(timeout, (int, float)) and timeout > 0 else 30.0


def _pool_timed_out(pool: Pool, timeout: float) -> sa_exc.TimeoutError:
    """The error SQLAlchemy's pool raises when nobody gave a connection back in time."""
    size = pool.size() if isinstance(pool, QueuePool) else 0
    overflow = pool.overflow() if isinstance(pool, QueuePool) else 0
    return sa_exc.TimeoutError(
        f"QueuePool limit of size {size} overflow {overflow} reached, connection timed out, "
        f"timeout {timeout:0.2f} (waiting for a unit of work to give its connection back)",
        code="3o7r",
    )


def _forget(waiters: deque[asyncio.Future[Connection | None]], future: Any) -> None:
    with contextlib.suppress(ValueError):  # handed its answer (and so taken off) already
        waiters.remove(future)


def _on_checkin(held: weakref.ref[HeldConnections]) -> Any:
    """The pool's ``checkin`` listener: after a connection went back to the pool, waiters no
    lent connection will reach go there too (on the next turn of the loop, when the connection
    that went is closed as its ``Connection`` sees it)."""

    def on_checkin(dbapi_connection: object, record: object) -> None:
        del dbapi_connection, record
        connections = held()
        if connections is None or not connections._waiters:  # noqa: SLF001 - our own
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a connection collected outside the loop: nobody waits there
            return
        loop.call_soon(connections.after_checkin)

    return on_checkin


def _closed_by_server(connection: Connection) -> bool:
    """Whether asyncpg knows the connection is closed (aiosqlite's never are)."""
    is_closed = getattr(connection.connection.driver_connection, "is_closed", None)
    return bool(is_closed is not None and is_closed())


def _throw_away(connection: Connection) -> None:
    """Back to the pool for good: the pool opens a new one in its place."""
    connection.invalidate()
    connection.close()
