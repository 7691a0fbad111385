"""The drivers under SQLAlchemy, for the hot paths that measured faster without it.

See docs/design/unit-of-work.md. Two kinds of private detail are used here, each probed and
each with a fallback (slower, never wrong):

* SQLAlchemy's asyncpg adapter begins its transaction lazily, on the first statement, through
  ``_start_transaction`` and keeps it in ``_transaction`` (2.0 also sets ``_started``). A
  statement sent straight to asyncpg must run inside that same transaction, so the unit of
  work begins it through the adapter, and, when it ends it on asyncpg, tells the adapter.
* aiosqlite's ``Connection._execute(fn, *args)`` runs ``fn`` in its worker thread, in queue
  order: one hop for several statements, and decisions made where the connection lives.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import Connection, Dialect, RootTransaction
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import PoolProxiedConnection

__all__ = [
    "as_sqlalchemy_error",
    "began_on_driver",
    "begin_immediate",
    "begin_owed",
    "begin_postgres",
    "end_postgres",
    "in_driver_thread",
    "owe_begin",
    "paid_begin",
    "pooled_connection",
    "postgres_adapter_known",
    "sqlite_adapter_known",
    "sqlite_begin_hook_stands_aside",
    "then_begun",
]

T = TypeVar("T")

_BEGAN_ON_DRIVER: ContextVar[bool] = ContextVar("dockyard_began_on_driver", default=False)


@contextmanager
def began_on_driver() -> Iterator[None]:
    """While SQLAlchemy is told of a transaction the unit of work runs on the driver itself,
    the engine's SQLite ``begin`` hook sends nothing (see ``sqlite_begin_hook_stands_aside``).
    """
    token = _BEGAN_ON_DRIVER.set(True)
    try:
        yield
    finally:
        _BEGAN_ON_DRIVER.reset(token)


def sqlite_begin_hook_stands_aside() -> bool:
    """Whether the ``begin`` event comes from ``began_on_driver`` (then the hook does nothing)."""
    return _BEGAN_ON_DRIVER.get()


async def pooled_connection(connection: AsyncConnection) -> PoolProxiedConnection:
    """The pooled DBAPI connection under ``connection`` (``get_raw_connection``, usually cheaper).

    ``get_raw_connection`` enters SQLAlchemy's greenlet in case it must reconnect; a connection
    that is open and valid has its pooled connection at hand, so only the others take it.
    """
    sync = connection.sync_connection
    if sync is not None and not sync.closed and not sync.invalidated:
        return sync.connection
    return await connection.get_raw_connection()


# ------------------------------------------------------------------------------- PostgreSQL


def postgres_adapter_known() -> bool:
    """Whether SQLAlchemy's asyncpg adapter keeps its transaction where this module looks."""
    try:
        from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
    except ImportError:  # asyncpg is an optional extra
        return False
    slots: set[str] = set()
    for cls in AsyncAdapt_asyncpg_connection.__mro__:
        slots.update(getattr(cls, "__slots__", ()))
    return callable(getattr(AsyncAdapt_asyncpg_connection, "_start_transaction", None)) and (
        "_transaction" in slots
    )


async def begin_postgres(adapter: Any, dialect: Dialect) -> Any:
    """The asyncpg connection under ``adapter``, inside the adapter's transaction."""
    if adapter._transaction is None:  # noqa: SLF001 - see the module doc
        try:
            await adapter._start_transaction()  # noqa: SLF001
        except BaseException as error:
            # asyncpg marks its transaction begun before BEGIN is answered, the adapter only
            # after: a BEGIN that failed or was cancelled in between leaves a connection whose
            # next BEGIN would be a SAVEPOINT, inside a transaction nobody ends (or none at
            # all). Nobody knows what the server did, so the connection goes; whoever returns
            # it sees it closed and discards it.
            adapter._connection.terminate()  # noqa: SLF001
            if isinstance(error, dialect.loaded_dbapi.Error):  # translated by the adapter
                raise as_sqlalchemy_error(adapter, dialect, error, "BEGIN") from error
            raise
    return adapter._connection  # noqa: SLF001


async def end_postgres(adapter: Any, dialect: Dialect, *, commit: bool) -> None:
    """Commit or roll back the adapter's transaction on asyncpg, then let the adapter forget it.

    The transaction is forgotten even when ending it failed: asyncpg marks it failed and the
    caller discards the connection. A failure is raised as SQLAlchemy would have raised it
    (``IntegrityError`` for a deferred constraint, and so on).
    """
    transaction = adapter._transaction  # noqa: SLF001
    if transaction is None:
        return
    try:
        await (transaction.commit() if commit else transaction.rollback())
    except Exception as error:
        statement = "COMMIT" if commit else "ROLLBACK"
        raise as_sqlalchemy_error(adapter, dialect, error, statement) from error
    finally:
        adapter._transaction = None  # noqa: SLF001
        if hasattr(adapter, "_started"):  # SQLAlchemy 2.0
            adapter._started = False  # noqa: SLF001


def as_sqlalchemy_error(
    adapter: Any, dialect: Dialect, error: Exception, statement: str
) -> BaseException:
    """``error`` as SQLAlchemy raises it from a statement: ``IntegrityError`` for a deferred
    constraint at COMMIT, a ``DBAPIError`` with ``connection_invalidated`` for a lost one.
    """
    adapted: Exception = error
    if not isinstance(error, dialect.loaded_dbapi.Error):
        translate = getattr(adapter, "_handle_exception", None)
        if translate is None:
            return error
        try:
            translate(error)  # raises the error as SQLAlchemy's DBAPI layer names it
        except Exception as translated:  # noqa: BLE001 - whatever it raises is the translation
            adapted = translated
    closed = getattr(adapter._connection, "is_closed", None)  # noqa: SLF001
    return DBAPIError.instance(
        statement,
        None,
        adapted,
        dialect.loaded_dbapi.Error,
        connection_invalidated=bool(closed and closed()),
        dialect=dialect,
    )


# ----------------------------------------------------------------------------------- SQLite


def _sqlite3_of(driver: Any) -> sqlite3.Connection | None:
    """``driver``'s ``sqlite3.Connection`` if its worker thread can run our functions."""
    sqlite = getattr(driver, "_connection", None)
    if isinstance(sqlite, sqlite3.Connection) and callable(getattr(driver, "_execute", None)):
        return sqlite
    return None


def sqlite_adapter_known() -> bool:
    """Whether aiosqlite still offers ``Connection._execute`` (checked on the class)."""
    try:
        import aiosqlite
    except ImportError:  # aiosqlite is an optional extra
        return False
    return callable(getattr(aiosqlite.Connection, "_execute", None))


async def in_driver_thread(
    driver: Any,  # aiosqlite.Connection (untyped)
    fn: Callable[..., T],
    *args: Any,
) -> tuple[T] | None:
    """``(fn(sqlite3_connection, *args),)`` run in aiosqlite's worker thread, or ``None``.

    ``None`` means this aiosqlite no longer looks as expected: run one statement per hop.
    The worker thread serves its queue in order, so ``fn`` runs after everything queued before
    it on this connection, exactly like a statement would.
    """
    sqlite = _sqlite3_of(driver)
    if sqlite is None:
        return None
    result: T = await driver._execute(fn, sqlite, *args)  # noqa: SLF001 - see the module doc
    return (result,)


def _begin_immediate(sqlite: sqlite3.Connection) -> None:
    # decided in the worker thread, after everything queued before: never a second BEGIN
    if not sqlite.in_transaction:
        sqlite.execute("BEGIN IMMEDIATE")


def then_begun(sqlite: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """``fn(sqlite, *args)`` inside a transaction: the BEGIN and ``fn`` in one hop."""
    _begin_immediate(sqlite)
    return fn(sqlite, *args)


async def begin_immediate(driver: Any) -> None:
    """``BEGIN IMMEDIATE`` on the aiosqlite connection, unless a transaction is open there."""
    if await in_driver_thread(driver, _begin_immediate) is None and not driver.in_transaction:
        await driver.execute("BEGIN IMMEDIATE")


# A unit of work tells SQLAlchemy's Connection that its transaction has begun without sending
# BEGIN (no I/O: `uow.connection` is a property). On PostgreSQL the adapter begins with the first
# statement anyway; on SQLite the engine's `before_cursor_execute` hook sends BEGIN IMMEDIATE
# before the first statement run through SQLAlchemy in that transaction, unless the unit of
# work's driver-level statements began it first.
_BEGIN_OWED = "dockyard_begin_owed"


def owe_begin(connection: Connection, transaction: RootTransaction) -> None:
    """SQLite: ``transaction`` began on ``connection`` without a BEGIN; the first statement run
    through SQLAlchemy in it sends one (see ``begin_owed``)."""
    connection.info[_BEGIN_OWED] = weakref.ref(transaction)


def begin_owed(connection: Connection) -> bool:
    """Whether the statement about to run on ``connection`` must send ``BEGIN IMMEDIATE``
    first: its transaction began as ``owe_begin`` says and the driver is not in one yet.

    A transaction the driver has begun (the unit of work's own statements) owes nothing more.
    """
    info = connection.info
    owed = info.get(_BEGIN_OWED)
    if owed is None:
        return False
    if owed() is not connection.get_transaction():  # a transaction since ended
        del info[_BEGIN_OWED]
        return False
    if connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        del info[_BEGIN_OWED]  # (every statement of this connection was awaited: it is current)
        return False
    return True


def paid_begin(connection: Connection) -> None:
    """The BEGIN ``begin_owed`` asked for was sent."""
    connection.info.pop(_BEGIN_OWED, None)
