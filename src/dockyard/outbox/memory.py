"""In-memory adapters of the outbox ports: real implementations for demos and tests.

``InMemoryOutboxBackend`` gives an ``OutboxModule`` the outbox and inbox below; they pass
``dockyard.testing.contracts.OutboxContract`` like the SQL adapters (``dockyard.sql``) do.

There are no transactions in memory, so the scoped writers buffer what a scope writes and
apply it when the scope exits without an error: a routed message and an inbox record appear
together with the handler's other effects, or not at all. A message a scope cancels is held
(relays skip it and the later messages of its key, as a row lock would) until the scope ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from dockyard.di import ProviderSpec, object_, scoped
from dockyard.modules import ModuleLike
from dockyard.outbox._destinations import Destinations
from dockyard.outbox._message import OutboxMessage, OutboxStatus
from dockyard.outbox._signal import Signal
from dockyard.outbox._store import (
    Cancellation,
    ClaimedBatch,
    Inbox,
    OutboxStore,
    OutboxWriter,
    Promotion,
)

__all__ = [
    "InMemoryInboxStore",
    "InMemoryOutboxBackend",
    "InMemoryOutboxStore",
    "memory_inbox",
    "memory_outbox_writer",
]

logger = logging.getLogger("dockyard.outbox")
_WAITING = (OutboxStatus.PENDING, OutboxStatus.DEAD)  # what a cancel deletes from the outbox


class InMemoryOutboxStore:
    """An ``OutboxStore`` in this process's memory; share one instance per app."""

    __slots__ = (
        "_claimed_ids",
        "_claimed_keys",
        "_delivered_at",
        "_due",
        "_held",
        "_rows",
        "_scheduled",
        "_sequence",
        "_settled",
        "_signal",
        "inbox",
    )

    def __init__(self, inbox: InMemoryInboxStore | None = None) -> None:
        self.inbox = inbox
        """The inbox ``purge_handled`` prunes (the backend's)."""
        self._rows: dict[str, OutboxMessage] = {}  # insertion order is outbox order
        self._delivered_at: dict[str, float] = {}
        self._claimed_ids: set[str] = set()
        self._claimed_keys: set[str] = set()
        self._signal = Signal()
        # Scheduled messages by id, with the sequence number of their heap entry; the heap
        # of (due, sequence, id) may hold entries of cancelled ones (skipped when met).
        self._scheduled: dict[str, tuple[int, OutboxMessage]] = {}
        self._due: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._held: set[str] = set()  # being cancelled by a scope that has not ended
        self._settled = asyncio.Event()  # set (and replaced) whenever a claim or scope ends

    @property
    def hears_every_commit(self) -> bool:
        return True  # one process, and every write goes through append()

    @property
    def claims_overlap(self) -> bool:
        return True  # a claim skips the keys and messages other claims hold

    # -- writing (through memory_outbox_writer, at scope exit) ---------------------------

    def append(self, messages: Sequence[OutboxMessage]) -> None:
        """Add committed messages (what a scope's writer does when the scope succeeds)."""
        for message in messages:
            scheduled = message.status is OutboxStatus.SCHEDULED
            if message.message_id in (self._scheduled if scheduled else self._rows):
                msg = f"outbox message id `{message.message_id}` is already used"
                raise ValueError(msg)
        for message in messages:
            if message.status is OutboxStatus.SCHEDULED:
                sequence = next(self._sequence)
                self._scheduled[message.message_id] = (sequence, message)
                heapq.heappush(self._due, (message.next_attempt_at, sequence, message.message_id))
            else:
                self._rows[message.message_id] = message
        if messages:
            self._signal.notify()

    async def hold(self, message_id: str) -> Cancellation:
        """Hold ``message_id`` for a scope that cancels it (what a row lock does in SQL);
        ``release`` deletes or frees it when the scope ends."""
        while message_id in self._claimed_ids or message_id in self._held:
            await self._settled.wait()  # a batch in flight, or another scope, decides first
        row = self._rows.get(message_id)
        if message_id in self._scheduled or (row is not None and row.status in _WAITING):
            self._held.add(message_id)
            return Cancellation.CANCELLED
        if row is not None and row.status is OutboxStatus.DELIVERED:
            return Cancellation.ALREADY_PUBLISHED
        return Cancellation.NOT_FOUND

    def release(self, message_ids: Sequence[str], *, committed: bool) -> None:
        """End the holds of a scope: delete the messages if it committed, else free them."""
        if not message_ids:
            return
        for message_id in message_ids:
            self._held.discard(message_id)
            if committed:
                self._scheduled.pop(message_id, None)
                row = self._rows.get(message_id)
                if row is not None and row.status in _WAITING:
                    del self._rows[message_id]
        self._ended()
        self._signal.notify()  # later messages of their keys may go on

    def _ended(self) -> None:
        self._settled.set()
        self._settled = asyncio.Event()

    # -- relay ---------------------------------------------------------------------------

    def claim(self, limit: int, now: float, /) -> AbstractAsyncContextManager[ClaimedBatch]:
        return self._claim(limit, now)

    def claim_destinations(
        self, destinations: Destinations, limit: int, now: float, /
    ) -> AbstractAsyncContextManager[ClaimedBatch]:
        return self._claim_matching(limit, now, destinations)

    @asynccontextmanager
    async def _claim(self, limit: int, now: float) -> AsyncIterator[ClaimedBatch]:
        async with self._claim_matching(limit, now, None) as batch:
            yield batch

    @asynccontextmanager
    async def _claim_matching(
        self, limit: int, now: float, destinations: Destinations | None
    ) -> AsyncIterator[ClaimedBatch]:
        taken: list[OutboxMessage] = []
        keys: set[str] = set()
        blocked: set[str] = set()
        scope = "" if destinations is None else destinations.scope
        for message in self._rows.values():
            if len(taken) >= limit:
                break
            if message.status is not OutboxStatus.PENDING:
                continue
            if destinations is not None and not destinations.matches(message.destination):
                continue  # another transport's: its relay keeps that key's order
            key = message.partition_key
            if key is not None:
                key = scope + "\x00" + key if scope else key  # held per transport
            if key is not None and (key in blocked or key in self._claimed_keys):
                continue
            if message.message_id in self._claimed_ids:
                continue
            if message.next_attempt_at > now or message.message_id in self._held:
                if key is not None:
                    blocked.add(key)  # later messages of its key must not overtake it
                continue
            taken.append(message)
            if key is not None:
                keys.add(key)
        batch = _MemoryBatch(taken)
        self._claimed_ids.update(m.message_id for m in taken)
        self._claimed_keys.update(keys)
        try:
            yield batch
            batch.apply(self)
        finally:
            self._claimed_ids.difference_update(m.message_id for m in taken)
            self._claimed_keys.difference_update(keys)
            self._ended()

    def listen(self) -> AbstractAsyncContextManager[asyncio.Event]:
        return self._signal.listen()

    async def next_due(self) -> float | None:
        due = [m.next_attempt_at for m in self._rows.values() if m.status is OutboxStatus.PENDING]
        scheduled = self._next_scheduled()
        if scheduled is not None:
            due.append(scheduled)
        return min(due, default=None)

    def _next_scheduled(self) -> float | None:
        while self._due and not self._current(self._due[0]):
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    async def promote(self, now: float, limit: int, /) -> Promotion:
        taken = 0
        held: list[tuple[float, int, str]] = []
        while self._due and taken < limit and self._due[0][0] <= now:
            entry = heapq.heappop(self._due)
            message_id = entry[2]
            if not self._current(entry):
                continue
            if message_id in self._held:
                held.append(entry)  # a scope is cancelling it: its outcome decides
                continue
            _, message = self._scheduled.pop(message_id)
            taken += 1
            if message_id in self._rows:
                logger.warning(_DUPLICATE, message_id)
                continue
            self._rows[message_id] = dataclasses.replace(message, status=OutboxStatus.PENDING)
        for entry in held:
            heapq.heappush(self._due, entry)
        return Promotion(taken, self._next_scheduled())

    def _current(self, entry: tuple[float, int, str]) -> bool:
        """Whether a heap entry is its message's (not one of a message since cancelled)."""
        found = self._scheduled.get(entry[2])
        return found is not None and found[0] == entry[1]

    async def purge_delivered(self, before: float, /) -> int:
        old = [i for i, at in self._delivered_at.items() if at < before]
        for message_id in old:
            del self._rows[message_id]
            del self._delivered_at[message_id]
        return len(old)

    async def purge_handled(self, before: float, /) -> int:
        return 0 if self.inbox is None else self.inbox.purge(before)

    # -- inspection and dead letters -----------------------------------------------------

    async def get(self, message_id: str, /) -> OutboxMessage | None:
        found = self._rows.get(message_id)
        if found is None and message_id in self._scheduled:
            return self._scheduled[message_id][1]
        return found

    async def counts(self) -> Mapping[OutboxStatus, int]:
        found = dict.fromkeys(OutboxStatus, 0)
        for message in self._rows.values():
            found[message.status] += 1
        found[OutboxStatus.SCHEDULED] = len(self._scheduled)
        return found

    async def oldest_pending(self) -> float | None:
        waiting = [m.created_at for m in self._rows.values() if m.status is OutboxStatus.PENDING]
        return min(waiting, default=None)

    async def counts_by_destination(self) -> Mapping[str, Mapping[OutboxStatus, int]]:
        found: dict[str, dict[OutboxStatus, int]] = {}
        messages = [*self._rows.values(), *(m for _, m in self._scheduled.values())]
        for message in messages:
            counts = found.setdefault(message.destination, dict.fromkeys(OutboxStatus, 0))
            counts[message.status] += 1
        return {destination: found[destination] for destination in sorted(found)}

    async def dead_letters(
        self,
        *,
        limit: int = 100,
        after: str | None = None,
        destination: str | None = None,
        type_name: str | None = None,
        since: float | None = None,
        error: str | None = None,
    ) -> list[OutboxMessage]:
        wanted = _DeadLetterFilter(destination, type_name, since, error)
        found: list[OutboxMessage] = []
        started = after is None
        for message in self._rows.values():
            if not started:
                started = message.message_id == after
                continue
            if message.status is not OutboxStatus.DEAD or not wanted.matches(message):
                continue
            found.append(message)
            if len(found) >= limit:
                break
        return found

    async def count_dead_letters(
        self,
        *,
        destination: str | None = None,
        type_name: str | None = None,
        since: float | None = None,
        error: str | None = None,
    ) -> int:
        wanted = _DeadLetterFilter(destination, type_name, since, error)
        return sum(
            1
            for message in self._rows.values()
            if message.status is OutboxStatus.DEAD and wanted.matches(message)
        )

    async def add_dead_letter(self, message: OutboxMessage, /) -> None:
        dead = dataclasses.replace(message, status=OutboxStatus.DEAD)
        self._delivered_at.pop(message.message_id, None)
        self._rows[message.message_id] = dead  # an existing row keeps its place in the order

    async def replay(self, message_ids: Sequence[str] | None, now: float, /) -> list[str]:
        chosen = self._dead(message_ids)
        for message_id in chosen:
            self._rows[message_id] = dataclasses.replace(
                self._rows[message_id],
                status=OutboxStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                last_error=None,
            )
        if chosen:
            self._signal.notify()
        return chosen

    async def purge_dead(self, message_ids: Sequence[str] | None, /) -> list[str]:
        chosen = self._dead(message_ids)
        for message_id in chosen:
            del self._rows[message_id]
        return chosen

    def _dead(self, message_ids: Sequence[str] | None) -> list[str]:
        if message_ids is None:
            return [i for i, m in self._rows.items() if m.status is OutboxStatus.DEAD]
        wanted = set(message_ids)
        return [i for i, m in self._rows.items() if i in wanted and m.status is OutboxStatus.DEAD]

    # -- used by _MemoryBatch ------------------------------------------------------------

    def _set(self, message_id: str, **changes: object) -> None:
        self._rows[message_id] = dataclasses.replace(self._rows[message_id], **changes)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True, slots=True)
class _DeadLetterFilter:
    destination: str | None
    type_name: str | None
    since: float | None
    error: str | None

    def matches(self, message: OutboxMessage) -> bool:
        if self.destination is not None and message.destination != self.destination:
            return False
        if self.type_name is not None and message.type_name != self.type_name:
            return False
        if self.since is not None and message.created_at < self.since:
            return False
        if self.error is None:
            return True
        return self.error.lower() in (message.last_error or "").lower()


_DUPLICATE = (
    "scheduled message %s is dropped: a message with its id is already in the outbox "
    "(the same id is the same message)"
)


class _MemoryBatch(ClaimedBatch):
    __slots__ = ("_delivered", "_failed", "_messages")

    def __init__(self, messages: list[OutboxMessage]) -> None:
        self._messages = messages
        self._delivered: list[tuple[str, float]] = []
        self._failed: list[tuple[str, dict[str, object]]] = []

    @property
    def messages(self) -> Sequence[OutboxMessage]:
        return self._messages

    async def delivered(self, message_ids: Sequence[str], now: float, /) -> None:
        self._delivered.extend((message_id, now) for message_id in message_ids)

    async def failed(
        self, message_id: str, error: str, attempts: int, next_attempt_at: float, /
    ) -> None:
        changes = {"last_error": error, "attempts": attempts, "next_attempt_at": next_attempt_at}
        self._failed.append((message_id, changes))

    async def dead(self, message_id: str, error: str, attempts: int, /) -> None:
        changes = {"last_error": error, "attempts": attempts, "status": OutboxStatus.DEAD}
        self._failed.append((message_id, changes))

    def apply(self, store: InMemoryOutboxStore) -> None:
        for message_id, at in self._delivered:
            store._set(message_id, status=OutboxStatus.DELIVERED)  # noqa: SLF001
            store._delivered_at[message_id] = at  # noqa: SLF001
        for message_id, changes in self._failed:
            store._set(message_id, **changes)  # noqa: SLF001


class _BufferedWriter(OutboxWriter):
    __slots__ = ("cancelled", "messages", "store")

    def __init__(self, store: InMemoryOutboxStore) -> None:
        self.store = store
        self.messages: list[OutboxMessage] = []
        self.cancelled: list[str] = []

    async def add(self, messages: Sequence[OutboxMessage], /) -> None:
        self.messages.extend(messages)

    async def cancel(self, message_id: str, /) -> Cancellation:
        if message_id in self.cancelled:  # by this scope already: as gone as a deleted row
            return Cancellation.NOT_FOUND
        for index, message in enumerate(self.messages):
            if message.message_id == message_id:  # written by this scope
                del self.messages[index]
                return Cancellation.CANCELLED
        found = await self.store.hold(message_id)
        if found is Cancellation.CANCELLED:
            self.cancelled.append(message_id)
        return found


async def memory_outbox_writer(
    store: InMemoryOutboxStore,
) -> AsyncGenerator[OutboxWriter, BaseException | None]:
    """The scope's outbox writer: what it buffers is added (and what it cancels deleted) when
    the scope exits cleanly."""
    writer = _BufferedWriter(store)
    committed = False
    try:
        error = yield writer  # Dishka sends the exception the scope exited with, or None
        if error is None:
            store.append(writer.messages)
            committed = True
    finally:
        store.release(writer.cancelled, committed=committed)


class InMemoryInboxStore:
    """Which (message id, handler) pairs were handled; share one instance per app."""

    __slots__ = ("_handled_at", "_reserved", "handled")

    def __init__(self) -> None:
        self.handled: set[tuple[str, str]] = set()
        self._handled_at: dict[tuple[str, str], float] = {}
        self._reserved: set[tuple[str, str]] = set()

    def purge(self, before: float) -> int:
        """Forget the pairs handled before ``before``; how many."""
        old = [key for key, at in self._handled_at.items() if at < before]
        for key in old:
            del self._handled_at[key]
            self.handled.discard(key)
        return len(old)

    def reserve(self, key: tuple[str, str]) -> bool:
        if key in self.handled or key in self._reserved:
            return False
        self._reserved.add(key)
        return True

    def settle(self, keys: Sequence[tuple[str, str]], *, committed: bool) -> None:
        now = time.time()
        for key in keys:
            self._reserved.discard(key)
            if committed:
                self.handled.add(key)
                self._handled_at[key] = now


class _MemoryInbox(Inbox):
    __slots__ = ("keys", "store")

    def __init__(self, store: InMemoryInboxStore) -> None:
        self.store = store
        self.keys: list[tuple[str, str]] = []

    async def record(self, message_id: str, handler: str, /) -> bool:
        key = (message_id, handler)
        if not self.store.reserve(key):
            return False
        self.keys.append(key)
        return True


async def memory_inbox(store: InMemoryInboxStore) -> AsyncGenerator[Inbox, BaseException | None]:
    """The scope's inbox: records become permanent when the scope exits cleanly."""
    inbox = _MemoryInbox(store)
    error: BaseException | None = BaseException()
    try:
        error = yield inbox
    finally:
        store.settle(inbox.keys, committed=error is None)


class InMemoryOutboxBackend:
    """Outbox and inbox in this process's memory: for demos and tests, lost at exit.

    Attributes:
        store: The outbox, to inspect in tests.
        inbox: The handled (message id, handler) pairs.
    """

    __slots__ = ("inbox", "store")

    def __init__(self) -> None:
        self.inbox = InMemoryInboxStore()
        self.store = InMemoryOutboxStore(self.inbox)

    def providers(self) -> Sequence[ProviderSpec]:
        return [
            object_(self.store, provides=InMemoryOutboxStore),
            object_(self.store, provides=OutboxStore),
            object_(self.inbox, provides=InMemoryInboxStore),
            scoped(OutboxWriter, memory_outbox_writer),
            scoped(Inbox, memory_inbox),
        ]

    def imports(self) -> Sequence[ModuleLike]:
        return ()
