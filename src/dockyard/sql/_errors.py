"""Driver errors become dockyard errors at this boundary."""

from __future__ import annotations

import sqlite3
from types import TracebackType

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from dockyard.exceptions import StoreUnavailableError

__all__ = ["as_store_error", "unavailable_as_store_error"]


def _raw_driver_errors() -> tuple[type[BaseException], ...]:
    # The hot paths talk to the drivers directly, so their own "gone" errors count too.
    # Each driver is an optional extra: only the installed ones are caught.
    found: list[type[BaseException]] = [sqlite3.OperationalError, sqlite3.InterfaceError]
    try:
        import asyncpg
    except ImportError:
        return tuple(found)
    # InternalClientError: what asyncpg raises when the server dropped the connection under it
    found += [
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.InternalClientError,
    ]
    return tuple(found)


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    *_raw_driver_errors(),
)


class unavailable_as_store_error:  # noqa: N801 - used as `with unavailable_as_store_error(...)`
    """Translate "the database did not answer" errors into ``StoreUnavailableError``.

    A class, not a generator-based context manager: it wraps every hot-path statement, and
    entering and leaving it this way costs a third as much.
    """

    __slots__ = ("operation",)

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        error = as_store_error(self.operation, exc)
        if error is not None:
            raise error from exc


def as_store_error(operation: str, exc: BaseException) -> StoreUnavailableError | None:
    """``exc`` as ``StoreUnavailableError`` if it says the database did not answer, else
    ``None`` (raise ``exc`` as it is). For the hottest paths, where a ``try`` costs nothing
    and ``unavailable_as_store_error`` three calls: ``except Exception as exc:``, then raise
    this ``from exc`` when it is not ``None``."""
    if isinstance(exc, _UNAVAILABLE) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return StoreUnavailableError(operation, _detail(exc))
    if isinstance(exc, (OSError, TimeoutError)):  # raised by drivers while connecting
        return StoreUnavailableError(operation, _detail(exc))
    state = _sqlstate(exc)
    if state == _TOO_MANY_CONNECTIONS:
        return StoreUnavailableError(operation, _too_many(exc))
    if state is not None and (state in _SHUTTING_DOWN or state.startswith(_CONNECTION_CLASS)):
        return StoreUnavailableError(operation, _detail(exc))
    return None


_TOO_MANY_CONNECTIONS = "53300"
_SHUTTING_DOWN = frozenset({"57P01", "57P02", "57P03"})  # terminated, crashed, restarting
_CONNECTION_CLASS = "08"  # connection exceptions: asyncpg's "connection was closed" is 08003


def _sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL error code of ``exc``, through SQLAlchemy's and the driver's wrapping."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        state = getattr(seen, "sqlstate", None)
        if isinstance(state, str):
            return state
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def _too_many(exc: BaseException) -> str:
    return (
        f"PostgreSQL refuses new connections, it has too many clients ({_detail(exc)}); "
        "each worker process opens at most `pool_size + max_overflow` connections per "
        "database (docs/operations.md, connection budget): lower them, run fewer processes, "
        "or raise the server's `max_connections`"
    )


def _detail(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0]}" if text else type(original).__name__
