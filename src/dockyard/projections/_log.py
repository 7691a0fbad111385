"""The head of the global log and how many events lie past a position, for any store.

The ``EventStore`` port reads events; a runner also needs the position of the newest event
that is final (no event below it can still appear) to move a filtered projection's checkpoint
past events it does not handle, and a count of events for lag. A store that implements the
optional ``LogHeadReader`` port answers from its index (dockyard's in-memory and SQL stores
do); any other store is scanned through ``read_all``.
"""

from __future__ import annotations

from typing import cast

from dockyard.eventsourcing._store import EventStore, LogHeadReader, OpenAppend

__all__ = ["count_after", "held_back_by", "log_head", "log_heads"]

_PAGE = 5000

_READS_HEAD: dict[type, bool] = {}
"""Per store class, whether it is a ``LogHeadReader``. A runtime-checkable ``isinstance``
costs 10-20 µs on Python 3.11 and runners ask on every poll; a class's methods do not change."""


def _reader(store: EventStore) -> LogHeadReader | None:
    kind = type(store)
    reads_head = _READS_HEAD.get(kind)
    if reads_head is None:
        reads_head = _READS_HEAD[kind] = isinstance(store, LogHeadReader)
    return cast("LogHeadReader", store) if reads_head else None


async def log_head(store: EventStore, *, committed: bool = False) -> int:
    """The global position of the newest event that is final; 0 for an empty log.

    With ``committed=True``: of the newest committed event, final or not (on PostgreSQL an
    event becomes final once no transaction that appended before it is still open; see the
    ordering design note).
    """
    final, newest = await log_heads(store)
    return newest if committed else final


async def log_heads(store: EventStore) -> tuple[int, int]:
    """``(final, committed)``: ``log_head`` both ways, in one query where the store can."""
    reader = _reader(store)
    if reader is not None:
        return await reader.log_heads()
    head, _count = await _scan(store, 0)
    return head, head


async def count_after(store: EventStore, position: int) -> int:
    """How many final events have a global position above ``position``."""
    reader = _reader(store)
    if reader is not None:
        return await reader.count_after(position)
    _head, count = await _scan(store, position)
    return count


async def held_back_by(store: EventStore) -> OpenAppend | None:
    """The open transaction that keeps committed events from being read, if one does.

    PostgreSQL: a transaction that appended and is still open holds every reader of the
    global log below its first position (docs/design/event-store-ordering.md). A store that
    is no ``LogHeadReader`` is read through ``read_all`` alone, which never waits: ``None``.
    """
    reader = _reader(store)
    if reader is None:
        return None
    return await reader.held_back_by()


async def _scan(store: EventStore, after: int) -> tuple[int, int]:
    head, count = after, 0
    while True:
        page = await store.read_all(head, _PAGE, skip_unknown=True)
        if not page:
            return head, count
        head = page[-1].global_position
        count += len(page)
