"""The head of the global log and how many events lie past a position, per store adapter.

The ``EventStore`` port reads events; a runner also needs the position of the newest event
that is final (no event below it can still appear) to move a filtered projection's checkpoint
past events it does not handle, and a count of events for lag. The adapters dockyard ships
answer both with one indexed query; any other store is scanned through ``read_all``.
"""

from __future__ import annotations

from bisect import bisect_right

from dockyard.eventsourcing._store import EventStore, OpenAppend
from dockyard.eventsourcing.store._memory import InMemoryEventStore

__all__ = ["count_after", "held_back_by", "log_head", "log_heads"]

_PAGE = 5000


async def log_head(store: EventStore, *, committed: bool = False) -> int:
    """The global position of the newest event that is final; 0 for an empty log.

    With ``committed=True``: of the newest committed event, final or not (on PostgreSQL an
    event becomes final once no transaction that appended before it is still open; see the
    ordering design note).
    """
    if isinstance(store, InMemoryEventStore):
        positions = store._log.positions  # noqa: SLF001 - dockyard's own adapter, read-only
        return positions[-1] if positions else 0
    sql = _sql_log(store)
    if sql is not None:
        return await sql.head(store, committed=committed)
    head, _count = await _scan(store, 0)
    return head


async def log_heads(store: EventStore) -> tuple[int, int]:
    """``(final, committed)``: ``log_head`` both ways, in one query where the store can."""
    sql = _sql_log(store)
    if sql is not None:
        return await sql.heads(store)
    head = await log_head(store)
    return head, head


async def count_after(store: EventStore, position: int) -> int:
    """How many final events have a global position above ``position``."""
    if isinstance(store, InMemoryEventStore):
        positions = store._log.positions  # noqa: SLF001 - dockyard's own adapter, read-only
        return len(positions) - bisect_right(positions, position)
    sql = _sql_log(store)
    if sql is not None:
        return await sql.count_after(store, position)
    _head, count = await _scan(store, position)
    return count


async def held_back_by(store: EventStore) -> OpenAppend | None:
    """The open transaction that keeps committed events from being read, if one does.

    PostgreSQL: a transaction that appended and is still open holds every reader of the
    global log below its first position (docs/design/event-store-ordering.md). Elsewhere a
    reader never waits for a writer: ``None``.
    """
    sql = _sql_log(store)
    if sql is None:
        return None
    return await sql.held_back_by(store)


class _SqlLog:
    async def heads(self, store: EventStore) -> tuple[int, int]:
        from dockyard.sql._eventsourcing.log_head import sql_log_heads

        return await sql_log_heads(store)

    async def held_back_by(self, store: EventStore) -> OpenAppend | None:
        from dockyard.sql._eventsourcing.log_head import sql_held_back_by

        return await sql_held_back_by(store)

    async def head(self, store: EventStore, *, committed: bool) -> int:
        from dockyard.sql._eventsourcing.log_head import sql_log_head

        return await sql_log_head(store, committed=committed)

    async def count_after(self, store: EventStore, position: int) -> int:
        from dockyard.sql._eventsourcing.log_head import sql_count_after

        return await sql_count_after(store, position)


def _sql_log(store: EventStore) -> _SqlLog | None:
    # dockyard.sql is an optional extra: only look at it when the store comes from there
    if type(store).__module__.startswith("dockyard.sql."):
        return _SqlLog()
    return None


async def _scan(store: EventStore, after: int) -> tuple[int, int]:
    head, count = after, 0
    while True:
        page = await store.read_all(head, _PAGE, skip_unknown=True)
        if not page:
            return head, count
        head = page[-1].global_position
        count += len(page)
