"""Driver errors become dockyard errors at this boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from dockyard.exceptions import StoreUnavailableError

__all__ = ["unavailable_as_store_error"]


@contextmanager
def unavailable_as_store_error(operation: str) -> Iterator[None]:
    """Translate "the database did not answer" errors into ``StoreUnavailableError``."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
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
