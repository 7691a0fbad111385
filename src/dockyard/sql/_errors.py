"""Driver errors become dockyard errors at this boundary."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from dockyard.eventsourcing._store import NewEvent
from dockyard.exceptions import DuplicateEventIdError, StoreUnavailableError
from dockyard.sql._eventsourcing.tables import events_table

if TYPE_CHECKING:  # an annotation only; the unit of work imports this module
    from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["INTEGRITY_ERRORS", "duplicate_event_id_error", "unavailable_as_store_error"]


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


def _integrity_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [IntegrityError, sqlite3.IntegrityError]
    try:
        import asyncpg
    except ImportError:
        return tuple(found)
    return (*found, asyncpg.IntegrityConstraintViolationError)


INTEGRITY_ERRORS = _integrity_errors()
"""What a broken constraint raises, through SQLAlchemy or straight from a driver."""

# PostgreSQL: `Key (event_id)=(0b6c...)already exists.`; SQLite names only the column.
_EVENT_ID_KEY = re.compile(r"Key \(event_id\)=\(([0-9a-fA-F-]{32,36})\)")
_SQLITE_EVENT_ID = "dockyard_events.event_id"


def _duplicate_event_id(error: BaseException) -> tuple[bool, UUID | None]:
    """Whether ``error`` is the unique index on ``dockyard_events.event_id`` refusing a row,
    and the refused id when the database names it (PostgreSQL does, SQLite does not)."""
    seen: BaseException | None = error
    for _ in range(4):  # SQLAlchemy wraps the driver's error (`orig`), which chains one more
        if seen is None:
            break
        if isinstance(seen, sqlite3.IntegrityError):
            return _SQLITE_EVENT_ID in str(seen), None
        detail = getattr(seen, "detail", None)
        if isinstance(detail, str) and getattr(seen, "sqlstate", None) == "23505":
            found = _EVENT_ID_KEY.search(detail)
            return found is not None, UUID(found.group(1)) if found is not None else None
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False, None


async def duplicate_event_id_error(
    error: BaseException, uow: SqlUnitOfWork, stream_id: str, events: Sequence[object]
) -> DuplicateEventIdError | None:
    """``DuplicateEventIdError`` if ``error`` is the event id index refusing an append's row,
    else ``None`` (the cold path of an append).

    PostgreSQL has aborted the transaction; SQLite has not, and may hold part of the append
    (the stream's new version, some rows): it is rolled back too, so both end alike and
    nothing of the append can be committed.
    """
    duplicate, event_id = _duplicate_event_id(error)
    if not duplicate:
        return None
    # only ids the caller chose can repeat (the store's own are random)
    chosen = [e.event_id for e in events if isinstance(e, NewEvent)]
    if uow.dialect != "postgresql":
        await uow.rollback()
        if event_id is None and len(chosen) > 1:  # SQLite does not say which one
            with unavailable_as_store_error(f"append to stream `{stream_id}`"):
                query = select(events_table.c.event_id).where(events_table.c.event_id.in_(chosen))
                stored = set((await uow.connection.execute(query)).scalars())
                await uow.rollback()
            event_id = next((i for i in chosen if i in stored), None)
    if event_id is None and len(chosen) == 1:
        event_id = chosen[0]
    return DuplicateEventIdError(event_id, stream_id)


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
        state = _sqlstate(exc)
        if state == _TOO_MANY_CONNECTIONS:
            raise StoreUnavailableError(self.operation, _too_many(exc)) from exc
        if state in _SHUTTING_DOWN:
            raise StoreUnavailableError(self.operation, _detail(exc)) from exc


_TOO_MANY_CONNECTIONS = "53300"
_SHUTTING_DOWN = frozenset({"57P01", "57P02", "57P03"})  # terminated, crashed, restarting


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
