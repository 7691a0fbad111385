"""Driver errors become dockyard errors at this boundary."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def unavailable_as_store_error(operation: str) -> Iterator[None]:
    """Translate "the database did not answer" errors into ``StoreUnavailableError``."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailableError(operation, _detail(exc)) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailableError(operation, _detail(exc)) from exc
        raise
    except (OSError, TimeoutError) as exc:  # raised by drivers while connecting
        raise StoreUnavailableError(operation, _detail(exc)) from exc


def _detail(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()
    return f"{type(original).__name__}: {text[0]}" if text else type(original).__name__
