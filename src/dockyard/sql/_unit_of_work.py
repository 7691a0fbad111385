"""``SqlUnitOfWork``: one connection and one transaction, shared by everything in a scope."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from sqlalchemy import Connection, Dialect, Engine, Executable, RootTransaction
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import greenlet_spawn

from dockyard.exceptions import TransactionEndedError, UnitOfWorkError
from dockyard.sql._driver import (
    as_sqlalchemy_error,
    began_on_driver,
    begin_immediate,
    begin_postgres,
    end_postgres,
    in_driver_thread,
    owe_begin,
    pooled_connection,
    then_begun,
)
from dockyard.sql._errors import as_store_error, unavailable_as_store_error

if TYPE_CHECKING:  # an annotation only; the database makes units of work, so imports this module
    from dockyard.sql._database import Database

__all__ = ["SqlUnitOfWork"]

T = TypeVar("T")
logger = logging.getLogger("dockyard.sql")


class SqlUnitOfWork:
    """Owns one connection and its transaction for one request scope.

    The event store, the outbox and the application's own repositories all execute on
    ``connection``, so their writes commit or roll back together. As an async context manager
    it begins on entry and, on exit, commits if the block raised nothing and rolls back if
    it did. After ``commit()`` or ``rollback()`` the next statement begins a new transaction.

    Where it can, the transaction is begun and ended on the driver itself and the connection
    is kept for the next unit of work instead of going back through SQLAlchemy's pool
    (docs/design/unit-of-work.md); ``connection`` is the same connection either way, always
    handed out inside the unit of work's transaction: a ``Session`` built on it joins that
    transaction and never commits it. If something other than the unit of work ends it (such
    a session's ``rollback()``), the unit of work refuses to commit: ``TransactionEndedError``.

    What must happen when a transaction ends (waking the outbox relay, dropping state kept
    for the transaction) is registered with ``after_commit`` and ``after_rollback``, never
    as a listener on the engine or the pool.
    """

    __slots__ = (
        "_after_commit",
        "_after_rollback",
        "_async",
        "_broken",
        "_fast",
        "_flushes",
        "_open",
        "_postgres",
        "_sync",
        "_transaction",
        "database",
        "log_bound",
    )

    def __init__(self, database: Database) -> None:
        self.database = database
        self._sync: Connection | None = None
        self._async: AsyncConnection | None = None
        self._fast = False  # transaction on the driver, connection kept idle afterwards
        # Fast: a BEGIN may have been sent on the driver (set before it is awaited, so a
        # cancelled one is still ended: aiosqlite's thread runs our ROLLBACK after it).
        # SQLAlchemy's Connection is told only when `connection` is used: on SQLite telling it
        # costs its own commit at the end, on PostgreSQL some bookkeeping (docs/event-store.md).
        self._open = False
        # The transaction `connection` was handed out in, as SQLAlchemy sees it; ended by
        # anything but this unit of work, it makes the commit fail (`_ended_elsewhere`).
        self._transaction: RootTransaction | None = None
        # Fast: the driver's transaction was ended by something else, and begun again since.
        self._broken = False
        self._postgres = database.dialect == "postgresql"
        self._after_commit: list[Callable[[], object]] | None = None
        self._after_rollback: list[Callable[[], object]] | None = None
        self._flushes: list[Callable[[], Awaitable[object]]] | None = None
        self.log_bound: int | None = None
        """PostgreSQL: the first position this transaction's first append took, the key its
        later appends announce themselves to readers of the global log with
        (docs/design/event-store-ordering.md); ``None`` before that."""

    @property
    def connection(self) -> AsyncConnection:
        """The connection every writer of this unit of work must use.

        It is inside the unit of work's transaction (as SQLAlchemy sees it) even before the
        first statement: a ``Session`` built on it joins that transaction and never commits
        it. ``connection.commit()`` and ``connection.rollback()`` end it as ``commit()`` and
        ``rollback()`` do, without their callbacks; whatever else ends it (such a session's
        ``rollback()``) makes the unit of work's commit raise ``TransactionEndedError``.
        """
        connection = self._async
        if connection is None:
            connection = self._async = _Connection(self, self._live())
        if self._transaction is None:
            self._transaction = self._handed_out_in(self._live())
        return connection

    def _handed_out_in(self, sync: Connection) -> RootTransaction | None:
        """The transaction ``connection`` is handed out in: SQLAlchemy's, begun now if need be
        (no I/O). ``None`` on the pool path with ``begin`` hooks of the user's, which may do
        I/O: SQLAlchemy then begins with the first statement, in its greenlet, as before."""
        transaction = sync.get_transaction()
        if transaction is None and (self._fast or self.database.connections.quiet_begin()):
            transaction = _mirror_begin(sync, sqlite=not self._postgres)
        return transaction

    def _live(self) -> Connection:
        if self._sync is None:
            raise UnitOfWorkError("use the connection", "has not begun or is already closed")
        return self._sync

    @property
    def dialect(self) -> str:
        """``"postgresql"`` or ``"sqlite"``."""
        return self.database.dialect

    def after_commit(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the current transaction has committed.

        Dropped if the transaction rolls back (or its commit fails). A callable already
        registered for this transaction is not added twice. Callbacks run in the order they
        were registered; one that raises is logged and does not stop the others, and never
        turns a successful commit into an error. Only commits and rollbacks made through the
        unit of work count: a ``uow.connection.commit()`` runs nothing.
        """
        self._after_commit = _added(self._after_commit, callback)

    def after_rollback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the current transaction has rolled back (or failed to
        commit, or was still open when the unit of work closed); dropped if it commits.
        Same rules as ``after_commit``.
        """
        self._after_rollback = _added(self._after_rollback, callback)

    def _ended(self, *, committed: bool) -> None:
        """The transaction is over: run what was registered for its outcome, drop the rest."""
        callbacks = self._after_commit if committed else self._after_rollback
        self._after_commit = self._after_rollback = None
        for callback in callbacks or ():
            try:
                callback()
            except Exception:
                logger.exception("a unit of work's %s callback failed", _OUTCOME[committed])

    def on_flush(self, flush: Callable[[], Awaitable[object]]) -> None:
        """Await ``flush()`` before this unit of work commits or runs its last statement
        (``execute_alone``, ``fetch_alone``): what a writer holds back (the scope's
        ``AsyncSession`` its pending objects) is then sent inside the transaction. Kept for
        the unit of work's life; one already registered is not added twice."""
        flushes = self._flushes
        if flushes is None:
            self._flushes = [flush]
        elif flush not in flushes:
            flushes.append(flush)

    async def flush(self) -> None:
        """Send what the writers registered with ``on_flush`` hold back."""
        for flush in self._flushes or ():
            await flush()

    async def execute_alone(
        self, statement: Executable, params: Mapping[str, Any] | None = None, /
    ) -> int:
        """Run ``statement`` as the last statement of the current transaction; its row count.

        What ``on_flush`` holds back is sent first. If nothing else has been sent in this
        transaction, on PostgreSQL the statement is sent alone, without ``BEGIN`` and
        ``COMMIT``: one round trip, atomic on its own and committed when it returns
        (``commit()`` then sends nothing, and runs its ``after_commit`` callbacks as usual).
        Otherwise it runs inside the transaction, which ``commit()`` ends as always. Either
        way, call ``commit()`` (or let the scope end) next, with nothing run in between: a
        statement run after one sent alone is in a new transaction.
        """
        await self.flush()
        driver = self._alone_driver()
        if driver is None:
            result = await self.connection.execute(statement, params)
            return int(result.rowcount)
        sql, args = _positional(statement, params, self.database.sqlalchemy_dialect)
        status = await self._alone(driver, driver.execute, sql, args)
        count = str(status).rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def fetch_alone(
        self, statement: Executable, params: Mapping[str, Any] | None = None, /
    ) -> Sequence[Sequence[Any]]:
        """``execute_alone`` for a statement that returns rows (``SELECT``, ``RETURNING``):
        its rows, whose columns are read by position."""
        await self.flush()
        driver = self._alone_driver()
        if driver is None:
            return (await self.connection.execute(statement, params)).all()
        sql, args = _positional(statement, params, self.database.sqlalchemy_dialect)
        rows: Sequence[Sequence[Any]] = await self._alone(driver, driver.fetch, sql, args)
        return rows

    async def fetch_rows(
        self, statement: Executable, params: Mapping[str, Any] | None = None, /
    ) -> Sequence[Sequence[Any]]:
        """The rows of ``statement``, run in this unit of work's transaction; columns are read
        by position.

        For ``text()`` statements and others whose values need no type processing. On
        PostgreSQL's driver path it runs on asyncpg itself, without SQLAlchemy's execution and
        its greenlet (docs/design/unit-of-work.md, "Statements on the driver"); otherwise
        through ``connection``. Errors are raised as SQLAlchemy raises
        them either way.
        """
        if not (self._fast and self._postgres):
            return (await self.connection.execute(statement, params)).all()
        driver = await self.driver()
        sql, args = _positional(statement, params, self.database.sqlalchemy_dialect)
        rows: Sequence[Sequence[Any]] = await self._on_driver(driver, driver.fetch, sql, args)
        return rows

    async def execute_count(
        self, statement: Executable, params: Mapping[str, Any] | None = None, /
    ) -> int:
        """``fetch_rows`` for a statement that returns no rows: how many rows it changed."""
        if not (self._fast and self._postgres):
            return int((await self.connection.execute(statement, params)).rowcount)
        driver = await self.driver()
        sql, args = _positional(statement, params, self.database.sqlalchemy_dialect)
        status = await self._on_driver(driver, driver.execute, sql, args)
        count = str(status).rpartition(" ")[2]
        return int(count) if count.isdigit() else 0

    async def execute_many(
        self, statement: Executable, rows: Sequence[Mapping[str, Any]], /
    ) -> None:
        """``execute_count`` once per row of values, in one round trip on PostgreSQL's driver
        path (asyncpg's ``executemany``); otherwise through ``connection``."""
        if not rows:
            return
        if not (self._fast and self._postgres):
            await self.connection.execute(statement, list(rows))
            return
        driver = await self.driver()
        dialect = self.database.sqlalchemy_dialect
        sql, first = _positional(statement, rows[0], dialect)
        if len(rows) == 1:
            await self._on_driver(driver, driver.execute, sql, first)
            return
        many = [first, *(_positional(statement, row, dialect)[1] for row in rows[1:])]
        await self._on_driver(driver, driver.executemany, sql, (many,))

    def _alone_driver(self) -> Any:  # asyncpg.Connection | None
        """asyncpg's connection if a statement may be sent alone now: PostgreSQL, the driver
        path, and nothing sent (nor begun, nor ended by anything else) in this transaction."""
        if not (self._fast and self._postgres) or self._open or self._ended_elsewhere():
            return None
        sync = self._live()
        if sync.invalidated:
            return None
        adapter: Any = sync.connection.dbapi_connection
        if adapter._transaction is not None or getattr(adapter, "_started", False):  # noqa: SLF001 - see _driver.py
            return None
        driver = adapter._connection  # noqa: SLF001
        if driver.is_closed() or driver.is_in_transaction():
            return None
        return driver

    async def _alone(self, driver: Any, run: Callable[..., Awaitable[T]], sql: str, args: Any) -> T:
        """``_on_driver`` for a statement sent alone: a connection it leaves in a transaction
        is in a state nobody knows too."""
        return await self._on_driver(driver, run, sql, args, alone=True)

    async def _on_driver(
        self,
        driver: Any,
        run: Callable[..., Awaitable[T]],
        sql: str,
        args: Any,
        *,
        alone: bool = False,
    ) -> T:
        """``run(sql, *args)`` on asyncpg, its errors raised as SQLAlchemy raises them. A
        statement that did not end with the server's answer (cancelled, the connection lost)
        leaves a connection nobody knows the state of: it is closed, and discarded when the
        unit of work returns it. Inside the transaction, the server's error leaves it failed,
        as SQLAlchemy would, and the unit of work rolls it back."""
        try:
            return await run(sql, *args)
        except BaseException as error:
            import asyncpg  # only here: the driver path on PostgreSQL has it

            if not isinstance(error, asyncpg.PostgresError) or (
                alone and driver.is_in_transaction()
            ):
                driver.terminate()
            if not isinstance(error, Exception):
                raise
            adapter = self._live().connection.dbapi_connection
            dialect = self.database.sqlalchemy_dialect
            raise as_sqlalchemy_error(adapter, dialect, error, sql) from error

    async def begin(self) -> None:
        """Take a connection; its transaction begins with the first statement run on it."""
        if self._sync is not None:
            raise UnitOfWorkError("begin", "has already begun")
        self.log_bound = None
        self._transaction, self._open, self._broken = None, False, False
        database = self.database
        connections = database.connections
        try:  # (as `unavailable_as_store_error`, without its three calls: see as_store_error)
            if not connections.fast_path():
                # checkout and begin in one trip into SQLAlchemy's greenlet, not two
                engine = database.engine.sync_engine
                self._sync = await greenlet_spawn(_connect_and_begin, engine)
                self._fast = False
                return
            # the transaction itself begins with the first statement, on SQLite in the same
            # hop to aiosqlite's thread (BEGIN IMMEDIATE: the write lock is taken then)
            self._sync, self._fast = await connections.checkout(), True
        except BaseException as exc:
            error = as_store_error("begin a unit of work", exc)
            if error is None:
                raise
            raise error from exc

    async def driver(self) -> Any:  # asyncpg.Connection | aiosqlite.Connection | None
        """The driver's own connection (asyncpg or aiosqlite), inside this unit of work's
        transaction (begun now if it has not been); ``None`` on PostgreSQL where SQLAlchemy's
        asyncpg adapter is not what this code expects (then use ``connection``).
        """
        sync = self._live()
        if self._fast:
            self._opening(sync)  # before any await: see __init__
            adapter = sync.connection.dbapi_connection
        else:
            if not self.database.connections.raw_paths and self._postgres:
                return None
            connection = self.connection
            if not sync.in_transaction():  # SQLAlchemy would autobegin too
                await connection.begin()
                if self._transaction is None:  # (else one ended elsewhere: kept, to fail)
                    self._transaction = sync.get_transaction()
            adapter = (await pooled_connection(connection)).dbapi_connection
        if self._postgres:
            return await begin_postgres(adapter, self.database.sqlalchemy_dialect)
        driver = adapter.driver_connection  # type: ignore[union-attr]
        if self._fast or not driver.in_transaction:  # (`connection` may not have sent it)
            await begin_immediate(driver)  # in the driver's thread: nothing if already begun
        return driver

    async def run_in_driver_thread(self, fn: Callable[..., T], *args: Any) -> tuple[T] | None:
        """SQLite: ``(fn(sqlite3_connection, *args),)`` in aiosqlite's worker thread, inside
        this unit of work's transaction (its BEGIN sent in the same hop if it has not been).

        ``None`` where aiosqlite cannot run our functions: use ``driver()`` and its public API.
        """
        sync = self._live()
        if not self._fast:
            return await in_driver_thread(await self.driver(), fn, *args)
        was_open = self._open
        self._opening(sync)
        ran = await in_driver_thread(sync.connection.driver_connection, then_begun, fn, *args)
        if ran is None:  # nothing was sent (and nothing awaited): no BEGIN to end
            self._open = was_open
        return ran

    def _opening(self, sync: Connection) -> None:
        """Fast path, before a statement on the driver: from now on its transaction may be
        open, and is ours to end. One we had begun that the driver no longer has was ended by
        something else (a ``Session`` that owned it, on a ``connection`` kept from before a
        ``commit()``): this unit of work will not commit."""
        if self._open and not _driver_in_transaction(sync, self._postgres):
            self._broken = True
        self._open = True

    async def commit(self) -> None:
        """Commit everything written so far.

        Raises:
            TransactionEndedError: Something other than this unit of work ended its
                transaction (a ``Session`` built on ``connection`` that rolled it back); what
                it holds since is rolled back instead.
        """
        await self.flush()
        self.log_bound = None
        if self._ended_elsewhere():
            await self._finish(commit=False)
            raise TransactionEndedError("commit the unit of work")
        await self._finish(commit=True)

    async def rollback(self) -> None:
        """Discard everything written since the last commit."""
        self.log_bound = None
        await self._finish(commit=False)

    async def _finish(self, *, commit: bool) -> None:
        """End the transaction, keep the connection, run the callbacks of the outcome."""
        committed = False
        try:
            with unavailable_as_store_error(_ACTION[commit]):
                if self._fast:
                    await self._end(commit=commit, release=False)
                else:
                    await self._end_through_sqlalchemy(commit=commit)
            committed = commit
        finally:
            self._ended(committed=committed)

    async def _end_through_sqlalchemy(self, *, commit: bool) -> None:
        """The pool path: end the transaction as SQLAlchemy's ``Connection`` does (the driver
        runs inside it); the next one begins when ``connection`` is next handed out."""
        sync = self._live()
        self._transaction = None
        await greenlet_spawn(sync.commit if commit else sync.rollback)

    async def _end_on_connection(self, *, commit: bool) -> None:
        """``connection.commit()`` or ``connection.rollback()``: as ``commit()`` and
        ``rollback()``, without running (or dropping) their callbacks."""
        if commit and self._ended_elsewhere():
            await self.rollback()
            raise TransactionEndedError("commit the unit of work on `uow.connection`")
        if self._fast:
            await self._end(commit=commit, release=False)
        else:
            await self._end_through_sqlalchemy(commit=commit)

    def _ended_elsewhere(self) -> bool:
        """Whether something other than this unit of work ended its transaction: the one
        ``connection`` was handed out in (a ``Session`` built on it rolled it back), or the
        one it began on the driver (its BEGIN was sent and nothing of ours ended it)."""
        sync = self._sync
        if sync is None or sync.invalidated:  # not begun, or lost: each fails as it did
            return False
        transaction = self._transaction
        if self._broken or (transaction is not None and not transaction.is_active):
            return True
        return self._fast and self._open and not _driver_in_transaction(sync, self._postgres)

    async def close(self) -> None:
        """Roll back anything uncommitted and return the connection to the pool."""
        sync = self._sync
        if sync is None:
            return
        try:
            with unavailable_as_store_error("close a unit of work"):
                if self._fast:
                    await self._end(commit=False, release=True)
                else:
                    self._sync = self._async = None
                    await greenlet_spawn(_end, sync, None)
        finally:
            self._ended(committed=False)

    async def __aenter__(self) -> Self:
        await self.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None and self._flushes:
            try:  # what the writers hold back goes out inside the transaction, as on commit()
                await self.flush()
            except BaseException as failed:
                await self.__aexit__(type(failed), failed, failed.__traceback__)
                raise
        connection = self._sync
        if connection is None:
            if exc_type is None:
                _ = self.connection  # raises UnitOfWorkError: nothing to commit
            return
        if exc_type is not None or self._ended_elsewhere():
            try:
                await self._roll_back_and_release(connection)
            finally:
                self._ended(committed=False)
            if exc_type is None:
                raise TransactionEndedError("commit the unit of work")
            return
        try:
            if self._fast:
                await self._end(commit=True, release=True)
            else:
                self._sync = self._async = None
                # the end of the transaction and the return to the pool: one greenlet trip
                await greenlet_spawn(_end, connection, connection.commit)
        except BaseException as failed:
            self._ended(committed=False)
            error = as_store_error("commit a unit of work", failed)
            if error is None:
                raise
            raise error from failed
        self._ended(committed=True)

    async def _roll_back_and_release(self, connection: Connection) -> None:
        if self._fast:
            try:
                await self._end(commit=False, release=True)
            except Exception as error:  # the block's own error matters more; it is closed
                # a connection already lost (an outage) has nothing left to roll back: the
                # block's error says what happened, once
                lost = isinstance(error, DBAPIError) and error.connection_invalidated
                logger.log(
                    logging.DEBUG if lost else logging.WARNING,
                    "a unit of work failed to roll back: %r",
                    error,
                    exc_info=True,
                )
            return
        with unavailable_as_store_error("roll back a unit of work"):
            self._sync = self._async = None
            if self._postgres and _cancelling():  # as in `_end`: no ROLLBACK to wait for
                await _discard(connection)
                return
            await greenlet_spawn(_end, connection, connection.rollback)

    async def _end(self, *, commit: bool, release: bool) -> None:
        """End the transaction on the driver; on ``release``, keep or return the connection.

        A connection whose commit or rollback did not finish (an error, a cancellation) is in
        a state nobody knows: it is closed for good, never kept, and this unit of work is over.
        """
        sync = self._live()
        self._transaction, self._broken = None, False
        if release:
            self._sync = self._async = None
        if sync.invalidated:  # a statement on `connection` lost it: SQLAlchemy knows, no I/O
            await self._end_lost(sync, commit=commit, release=release)
            return
        if not commit and self._postgres and _cancelling():
            # Cancelled (a forced stop): a ROLLBACK could wait for ever on a server that does
            # not answer. The connection goes instead; the server rolls back what it left open.
            self._sync = self._async = None
            self._open = False
            await _discard(sync)
            return
        try:
            if self._postgres:
                adapter = sync.connection.dbapi_connection
                await end_postgres(adapter, self.database.sqlalchemy_dialect, commit=commit)
                if sync.in_transaction():  # SQLAlchemy's bookkeeping; nothing left to send
                    sync.commit() if commit else sync.rollback()
            elif sync.in_transaction():  # SQLAlchemy knows: it ends the transaction
                await greenlet_spawn(sync.commit if commit else sync.rollback)
            elif self._open:
                driver = sync.connection.driver_connection
                await (driver.commit() if commit else driver.rollback())  # type: ignore[union-attr]
            self._open = False
        except BaseException:
            self._sync = self._async = None
            await _discard(sync)
            raise
        if not release:
            return
        if _driver_unusable(sync):  # the server or the network dropped it, or it is not idle
            await _discard(sync)
        elif not self.database.connections.keep(sync):
            await greenlet_spawn(sync.close)

    async def _end_lost(self, sync: Connection, *, commit: bool, release: bool) -> None:
        """End the transaction of a connection SQLAlchemy invalidated (the server or the
        network dropped it under a statement): the server has rolled it back already, so a
        rollback only clears SQLAlchemy's bookkeeping and a commit raises its
        ``PendingRollbackError``. Kept (without ``release``), the ``Connection`` takes a new
        connection from the pool when next used."""
        self._open = False
        try:
            sync.commit() if commit else sync.rollback()
        except BaseException:
            self._sync = self._async = None
            await _discard(sync)
            raise
        if release:
            await _discard(sync)


_OUTCOME = {True: "after-commit", False: "after-rollback"}
_ACTION = {True: "commit a unit of work", False: "roll back a unit of work"}


def _added(
    callbacks: list[Callable[[], object]] | None, callback: Callable[[], object]
) -> list[Callable[[], object]]:
    if callbacks is None:
        return [callback]
    if callback not in callbacks:
        callbacks.append(callback)
    return callbacks


class _Compiled:
    """A statement compiled for asyncpg: its SQL, its parameters' names in ``$n`` order, and
    whether the caller's values can be read by those names (no expanding ``IN``), which saves
    SQLAlchemy's ``construct_params`` when they are all given (else it fills in defaults, or
    raises its error for a missing value). Neither converts values by type."""

    __slots__ = ("compiled", "names", "plain", "sql")

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled: Any = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.compiled, self.sql = compiled, compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        binds = {bind.key: bind for bind in compiled.binds.values()}
        self.plain = all(name in binds and not binds[name].expanding for name in self.names)


_COMPILED: weakref.WeakKeyDictionary[Executable, _Compiled] = weakref.WeakKeyDictionary()


def _positional(
    statement: Executable, params: Mapping[str, Any] | None, dialect: Dialect
) -> tuple[str, list[Any]]:
    """``statement`` as asyncpg takes it (``$1``, ``$2``…) and its values in that order;
    compiled once per statement object. For ``text()`` statements and others whose values
    need no type processing (what the alone paths run)."""
    compiled = _COMPILED.get(statement)
    if compiled is None:
        compiled = _COMPILED[statement] = _Compiled(statement, dialect)
    if compiled.plain and params is not None:
        try:
            return compiled.sql, [params[name] for name in compiled.names]
        except KeyError:  # a value missing: SQLAlchemy's error, below
            pass
    values = compiled.compiled.construct_params(params)
    return compiled.sql, [values[name] for name in compiled.names]


def _driver_unusable(sync: Connection, *, ended: bool = True) -> bool:
    """Whether asyncpg's connection is closed or, when its transaction has ``ended``, still not
    idle: then nobody knows its state, and it is never handed to the next unit of work."""
    driver: Any = sync.connection.driver_connection
    is_closed = getattr(driver, "is_closed", None)  # asyncpg's; aiosqlite has none
    if is_closed is None:
        return False
    return bool(is_closed() or (ended and driver.is_in_transaction()))


def _driver_in_transaction(sync: Connection, postgres: bool) -> bool:
    """Whether the driver is inside a transaction; every statement of ours was awaited, so
    its flag is current."""
    adapter: Any = sync.connection.dbapi_connection
    if postgres:
        return adapter._transaction is not None  # noqa: SLF001 - see _driver.py
    return bool(adapter.driver_connection.in_transaction)


def _mirror_begin(sync: Connection, *, sqlite: bool) -> RootTransaction:
    """Begin SQLAlchemy's transaction on ``sync`` without I/O: the one the unit of work begins
    (or has begun) on the driver, so that a ``Session`` built on ``uow.connection`` joins it
    and ``uow.connection.commit()`` commits what the driver began.

    No I/O: called only without user listeners on ``begin``, and dockyard's own SQLite hook
    stands aside here. PostgreSQL's adapter begins with its first statement; on SQLite the
    engine's statement hook sends the BEGIN then (``owe_begin``), unless the driver has.
    """
    with began_on_driver():
        transaction = sync.begin()
    if sqlite:
        owe_begin(sync, transaction)
    return transaction


class _Connection(AsyncConnection):
    """``uow.connection``: its ``commit()`` and ``rollback()`` are the unit of work's own.

    A ``Session`` built on it calls the ``Connection`` underneath, never these, so the unit of
    work tells its own ends of the transaction from anybody else's.
    """

    __slots__ = ("_uow",)

    def __init__(self, uow: SqlUnitOfWork, sync: Connection) -> None:
        super().__init__(uow.database.engine, sync)
        self._uow = uow

    async def commit(self) -> None:
        """Commit the unit of work's transaction (its ``after_commit`` callbacks do not run).

        Raises:
            TransactionEndedError: Something else ended the transaction (see
                ``SqlUnitOfWork.commit``); the unit of work rolled back instead.
        """
        await self._uow._end_on_connection(commit=True)  # noqa: SLF001 - its own connection

    async def rollback(self) -> None:
        """Roll back the unit of work's transaction (its ``after_rollback`` callbacks do not
        run)."""
        await self._uow._end_on_connection(commit=False)  # noqa: SLF001


def _cancelling() -> bool:
    """Whether the running task is being cancelled."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _discard(connection: Connection) -> None:
    """Close the connection for good (the pool opens a new one), even if we are cancelled."""

    def invalidate() -> None:
        try:
            connection.invalidate()
        finally:
            connection.close()

    await asyncio.shield(greenlet_spawn(invalidate))


def _connect_and_begin(engine: Engine) -> Connection:
    connection = engine.connect()
    try:
        connection.begin()
    except BaseException:
        connection.close()
        raise
    return connection


def _end(connection: Connection, end_transaction: Callable[[], None] | None) -> None:
    """End the transaction (if asked to) and return the connection to the pool, in one trip
    into SQLAlchemy's greenlet. A driver connection closed under SQLAlchemy (a cancelled
    BEGIN, see ``begin_postgres``) is invalidated first, so the pool never hands it on."""
    try:
        if end_transaction is not None:
            end_transaction()
    finally:
        ended = end_transaction is not None  # else SQLAlchemy's close() rolls back
        if (
            not connection.invalidated
            and not connection.closed
            and _driver_unusable(connection, ended=ended)
        ):
            connection.invalidate()
        connection.close()  # the pool's reset (ROLLBACK) on return stays as it was
