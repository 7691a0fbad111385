"""Driver errors become dockyard errors at this boundary."""

from __future__ import annotations

import sqlite3
from types import TracebackType

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from dockyard.exceptions import StoreUnavailableError

__all__ = ["unavailable_as_store_error"]


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
        if isinstance(exc, _UNAVAILABLE) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated
        ):
            raise StoreUnavailableError(self.operation, _detail(exc)) from exc
        if isinstance(exc, (OSError, TimeoutError)):  # raised by drivers while connecting
            raise StoreUnavailableError(self.operation, _detail(exc)) from exc


def _detail(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0]}" if text else type(original).__name__
