"""An append refused by the event id index becomes ``DuplicateEventIdError``."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dockyard.eventsourcing._store import NewEvent
from dockyard.exceptions import DuplicateEventIdError
from dockyard.sql._errors import unavailable_as_store_error
from dockyard.sql._eventsourcing.tables import events_table
from dockyard.sql._unit_of_work import SqlUnitOfWork

__all__ = ["INTEGRITY_ERRORS", "duplicate_event_id_error"]


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
