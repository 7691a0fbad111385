"""In-memory adapters of the outbox ports: real implementations for demos and tests.

``InMemoryOutboxBackend`` gives an ``OutboxModule`` the outbox and inbox below; they pass
``dockyard.testing.contracts.OutboxContract`` like the SQL adapters (``dockyard.sql``) do.

There are no transactions in memory, so the scoped writers buffer what a scope writes and
apply it when the scope exits without an error: a routed message and an inbox record appear
together with the handler's other effects, or not at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from dockyard.di import ProviderSpec, object_, scoped
from dockyard.modules import ModuleLike
from dockyard.outbox._message import OutboxMessage, OutboxStatus
from dockyard.outbox._signal import Signal
from dockyard.outbox._store import ClaimedBatch, Inbox, OutboxStore, OutboxWriter

__all__ = [
    "InMemoryInboxStore",
    "InMemoryOutboxBackend",
    "InMemoryOutboxStore",
    "memory_inbox",
    "memory_outbox_writer",
]


class InMemoryOutboxStore:
    """An ``OutboxStore`` in this process's memory; share one instance per app."""

    __slots__ = ("_claimed_ids", "_claimed_keys", "_delivered_at", "_rows", "_signal")

    def __init__(self) -> None:
        self._rows: dict[str, OutboxMessage] = {}  # insertion order is outbox order
        self._delivered_at: dict[str, float] = {}
        self._claimed_ids: set[str] = set()
        self._claimed_keys: set[str] = set()
        self._signal = Signal()

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
            if message.message_id in self._rows:
                msg = f"outbox message id `{message.message_id}` is already used"
                raise ValueError(msg)
        for message in messages:
            self._rows[message.message_id] = message
        if messages:
            self._signal.notify()

    # -- relay ---------------------------------------------------------------------------

    def claim(self, limit: int, now: float, /) -> AbstractAsyncContextManager[ClaimedBatch]:
        return self._claim(limit, now)

    @asynccontextmanager
    async def _claim(self, limit: int, now: float) -> AsyncIterator[ClaimedBatch]:
        taken: list[OutboxMessage] = []
        keys: set[str] = set()
        blocked: set[str] = set()
        for message in self._rows.values():
            if len(taken) >= limit:
                break
            if message.status is not OutboxStatus.PENDING:
                continue
            key = message.partition_key
            if key is not None and (key in blocked or key in self._claimed_keys):
                continue
            if message.message_id in self._claimed_ids:
                continue
            if message.next_attempt_at > now:
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

    def listen(self) -> AbstractAsyncContextManager[asyncio.Event]:
        return self._signal.listen()

    async def next_due(self) -> float | None:
        due = [m.next_attempt_at for m in self._rows.values() if m.status is OutboxStatus.PENDING]
        return min(due, default=None)

    async def purge_delivered(self, before: float, /) -> int:
        old = [i for i, at in self._delivered_at.items() if at < before]
        for message_id in old:
            del self._rows[message_id]
            del self._delivered_at[message_id]
        return len(old)

    # -- inspection and dead letters -----------------------------------------------------

    async def get(self, message_id: str, /) -> OutboxMessage | None:
        return self._rows.get(message_id)

    async def counts(self) -> Mapping[OutboxStatus, int]:
        found = dict.fromkeys(OutboxStatus, 0)
        for message in self._rows.values():
            found[message.status] += 1
        return found

    async def dead_letters(
        self, *, limit: int = 100, after: str | None = None, destination: str | None = None
    ) -> list[OutboxMessage]:
        found: list[OutboxMessage] = []
        started = after is None
        for message in self._rows.values():
            if not started:
                started = message.message_id == after
                continue
            if message.status is not OutboxStatus.DEAD:
                continue
            if destination is not None and message.destination != destination:
                continue
            found.append(message)
            if len(found) >= limit:
                break
        return found

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
    __slots__ = ("messages",)

    def __init__(self) -> None:
        self.messages: list[OutboxMessage] = []

    async def add(self, messages: Sequence[OutboxMessage], /) -> None:
        self.messages.extend(messages)


async def memory_outbox_writer(
    store: InMemoryOutboxStore,
) -> AsyncGenerator[OutboxWriter, BaseException | None]:
    """The scope's outbox writer: what it buffers is added when the scope exits cleanly."""
    writer = _BufferedWriter()
    error = yield writer  # Dishka sends the exception the scope exited with, or None
    if error is None:
        store.append(writer.messages)


class InMemoryInboxStore:
    """Which (message id, handler) pairs were handled; share one instance per app."""

    __slots__ = ("_reserved", "handled")

    def __init__(self) -> None:
        self.handled: set[tuple[str, str]] = set()
        self._reserved: set[tuple[str, str]] = set()

    def reserve(self, key: tuple[str, str]) -> bool:
        if key in self.handled or key in self._reserved:
            return False
        self._reserved.add(key)
        return True

    def settle(self, keys: Sequence[tuple[str, str]], *, committed: bool) -> None:
        for key in keys:
            self._reserved.discard(key)
            if committed:
                self.handled.add(key)


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
        self.store = InMemoryOutboxStore()
        self.inbox = InMemoryInboxStore()

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
