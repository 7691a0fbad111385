"""``InMemoryTransport``: a real transport inside one process, for demos, tests and benchmarks.

It keeps the promises of the ``Transport`` port (checked by ``TransportContract``): consumer
groups, competing consumers, per-key order with one unacknowledged message per key, acks,
rejections with a delay, and redelivery of whatever a closed subscription left unacknowledged.
``go_offline()`` makes it behave as an unreachable broker until ``go_online()`` (publishes
raise ``TransportUnavailableError``, nothing is delivered), to test what depends on it.
Messages published to a destination that no group has declared yet wait for the first group
that declares it, like a durable queue declared ahead of time.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import ClassVar

from dockyard.exceptions import TransportClosedError, TransportUnavailableError
from dockyard.transport._batch import publish_in_waves
from dockyard.transport._port import Delivery, TransportMessage

__all__ = ["InMemoryTransport"]

_SCAN_LIMIT = 1_000
"""Entries looked at per receive before waiting: bounds the cost when a hot key is busy."""


class _Entry:
    __slots__ = ("attempt", "available_at", "message", "seq")

    def __init__(self, seq: int, message: TransportMessage) -> None:
        self.seq = seq
        self.message = message
        self.attempt = 0
        self.available_at = 0.0

    def __lt__(self, other: _Entry) -> bool:
        return self.seq < other.seq


class _Group:
    """One consumer group's queue: fresh entries in publish order plus re-queued ones."""

    __slots__ = ("_changed", "busy_keys", "fresh", "requeued")

    def __init__(self) -> None:
        self.fresh: OrderedDict[int, _Entry] = OrderedDict()
        self.requeued: list[_Entry] = []  # sorted by seq; small (rejections, closed consumers)
        self.busy_keys: set[str] = set()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self.fresh) + len(self.requeued)

    def put(self, entry: _Entry) -> None:
        self.fresh[entry.seq] = entry
        self.notify()

    def requeue(self, entry: _Entry, delay: float) -> None:
        entry.available_at = time.monotonic() + delay if delay > 0 else 0.0
        bisect.insort(self.requeued, entry)
        self.notify()

    def notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _in_order(self) -> Iterator[_Entry]:
        if not self.requeued:
            return iter(self.fresh.values())
        return heapq.merge(self.requeued, self.fresh.values())

    def take(self) -> tuple[_Entry | None, float | None]:
        """The first deliverable entry, or ``None`` and how long until a delayed one is due."""
        now = time.monotonic()
        blocked: set[str] = set()
        wait: float | None = None
        for scanned, entry in enumerate(self._in_order()):
            if scanned >= _SCAN_LIMIT:
                break
            key = entry.message.partition_key
            if key is not None and (key in self.busy_keys or key in blocked):
                blocked.add(key)
                continue
            if entry.available_at > now:
                if key is not None:
                    blocked.add(key)  # later messages of its key wait behind it
                due = entry.available_at - now
                wait = due if wait is None else min(wait, due)
                continue
            if self.requeued and self.requeued[0] is entry:
                self.requeued.pop(0)
            elif entry.seq in self.fresh:
                del self.fresh[entry.seq]
            else:
                self.requeued.remove(entry)
            if key is not None:
                self.busy_keys.add(key)
            entry.attempt += 1
            return entry, None
        return None, wait

    async def changed(self, seconds: float | None) -> None:
        waiter = self._changed
        try:
            await asyncio.wait_for(waiter.wait(), seconds)
        except TimeoutError:
            return

    def release(self, entry: _Entry) -> None:
        key = entry.message.partition_key
        if key is not None:
            self.busy_keys.discard(key)


class _Delivery(Delivery):
    __slots__ = ("_done", "_entry", "_group", "_subscription")

    def __init__(self, group: _Group, entry: _Entry, subscription: _Subscription) -> None:
        self._group = group
        self._entry = entry
        self._subscription = subscription
        self._done = False

    @property
    def message(self) -> TransportMessage:
        return self._entry.message

    @property
    def attempt(self) -> int:
        return self._entry.attempt

    async def ack(self) -> None:
        if self._settle():
            self._group.release(self._entry)
            self._group.notify()

    async def nack(self, *, delay: float = 0.0) -> None:
        if self._settle():
            self._group.release(self._entry)
            self._group.requeue(self._entry, delay)

    def _settle(self) -> bool:
        if self._done:
            return False
        self._done = True
        self._subscription.unacked.pop(self._entry.seq, None)
        return True

    def __repr__(self) -> str:
        return f"<Delivery {self.message.message_id} attempt={self.attempt}>"


class _Subscription:
    __slots__ = ("_closed", "_group", "_prefetch", "_transport", "unacked")

    def __init__(self, transport: InMemoryTransport, group: _Group, prefetch: int) -> None:
        self._transport = transport
        self._group = group
        self._prefetch = prefetch
        self._closed = False
        self.unacked: dict[int, _Delivery] = {}

    async def __aiter__(self) -> AsyncIterator[Delivery]:
        group = self._group
        while not self._closed:
            self._transport.check_open()
            await self._transport.wait_online()
            if len(self.unacked) >= self._prefetch:
                await group.changed(None)
                continue
            entry, wait = group.take()
            if entry is None:
                await group.changed(wait)
                continue
            delivery = _Delivery(group, entry, self)
            self.unacked[entry.seq] = delivery
            yield delivery

    def close(self) -> None:
        self._closed = True
        for delivery in list(self.unacked.values()):
            if delivery._settle():  # noqa: SLF001 - the subscription owns its deliveries
                self._group.release(delivery._entry)  # noqa: SLF001
                self._group.requeue(delivery._entry, 0.0)  # noqa: SLF001
        self._group.notify()


class InMemoryTransport:
    """A ``Transport`` that lives in this process's memory.

    Example:
        ```python
        transport = InMemoryTransport()
        await transport.declare("orders", "billing")
        await transport.publish(TransportMessage("m-1", "orders", "OrderPlaced", b"{}"))
        async with transport.subscribe("orders", "billing") as deliveries:
            async for delivery in deliveries:
                await delivery.ack()
                break
        ```
    """

    __slots__ = (
        "_backlog",
        "_closed",
        "_destinations",
        "_online",
        "_seq",
        "_subscriptions",
        "published",
    )

    in_process: ClassVar[bool] = True
    """Messages never leave this process (``dockyard.transport.in_process``)."""
    messaging_system: ClassVar[str] = "dockyard"
    """``messaging.system`` in telemetry (OpenTelemetry semantic conventions)."""

    def __init__(self) -> None:
        self._online = asyncio.Event()
        self._online.set()
        self._destinations: dict[str, dict[str, _Group]] = {}
        self._backlog: dict[str, list[_Entry]] = {}
        self._subscriptions: set[_Subscription] = set()
        self._seq = 0
        self._closed = False
        self.published = 0
        """How many messages were published (for tests and benchmarks)."""

    def check_open(self) -> None:
        if self._closed:
            raise TransportClosedError("in-memory")

    @property
    def online(self) -> bool:
        """``False`` between ``go_offline()`` and ``go_online()``."""
        return self._online.is_set()

    def go_offline(self) -> None:
        """Act as an unreachable broker: publishes raise ``TransportUnavailableError`` (nothing
        is stored) and subscriptions deliver nothing, until ``go_online()``. Unacknowledged
        deliveries stay with their consumers, as over a connection that comes back."""
        self._online.clear()

    def go_online(self) -> None:
        """End ``go_offline()``: publish and deliver again."""
        self._online.set()

    async def wait_online(self) -> None:
        await self._online.wait()

    def check_online(self) -> None:
        if not self._online.is_set():
            raise TransportUnavailableError("in-memory", "it was taken offline (go_offline())")

    async def publish(self, message: TransportMessage, /) -> None:
        self.check_open()
        self.check_online()
        self._seq += 1
        self.published += 1
        groups = self._destinations.get(message.destination)
        if not groups:
            self._backlog.setdefault(message.destination, []).append(_Entry(self._seq, message))
            return
        for group in groups.values():
            group.put(_Entry(self._seq, message))

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        """Publish ``messages`` in order (``BatchPublisher``); a failed message holds back the
        later messages of its key, and ``BatchPublishError`` names them."""
        self.check_open()
        self.check_online()
        await publish_in_waves("in-memory", messages, self._publish_wave)

    async def _publish_wave(
        self, messages: Sequence[TransportMessage]
    ) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        for message in messages:
            try:
                await self.publish(message)  # a subclass may refuse some (tests do)
            except Exception as exc:  # noqa: BLE001 - reported per message
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    async def declare(self, destination: str, group: str) -> None:
        self.check_open()
        self._group(destination, group)

    def _group(self, destination: str, name: str) -> _Group:
        groups = self._destinations.setdefault(destination, {})
        group = groups.get(name)
        if group is None:
            group = groups[name] = _Group()
            for entry in self._backlog.pop(destination, ()):
                group.put(entry)
        return group

    @asynccontextmanager
    async def subscribe(
        self, destination: str, group: str, *, prefetch: int = 1
    ) -> AsyncIterator[_Subscription]:
        if prefetch < 1:
            msg = f"prefetch must be at least 1, got {prefetch}"
            raise ValueError(msg)
        self.check_open()
        subscription = _Subscription(self, self._group(destination, group), prefetch)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            subscription.close()

    async def backlog(self, destination: str, group: str, /) -> int | None:
        """``pending``, as the ``BacklogReader`` capability."""
        return self.pending(destination, group)

    def pending(self, destination: str, group: str) -> int:
        """Messages waiting in ``group``'s queue (not counting unacknowledged ones)."""
        groups = self._destinations.get(destination, {})
        found = groups.get(group)
        if found is None:
            return len(self._backlog.get(destination, ()))
        return len(found)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.close()
