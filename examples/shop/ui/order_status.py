"""An order's status as it changes, for the web pages: a stream request and what feeds it.

``WatchOrder`` answers with the order's statuses, one per event of its stream (``placed``,
then ``paid`` once payments has charged the customer), and then waits for the next one
until the order is paid. What the stream shows is what the shop stored: each status is the
``Order`` aggregate replayed up to that event, read from the event store.

It waits without polling: ``NoticeOrderChanges`` hears ``OrderPlaced`` and ``OrderPaid``
where the orders component publishes them, in the transaction that stores them, and wakes
the streams watching that order once that transaction has committed (never before: a
rolled-back change wakes nobody). The wake-up is in-process, so the streams must run where
the changes commit: in the web process with its background services, as ``make serve``
does (a ``dockyard worker`` of its own would commit ``OrderPaid`` in another process).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from dockyard import module, singleton
from dockyard.eventsourcing import EventStore
from dockyard.messaging import EventHandler, StreamHandler, StreamRequest, UnitOfWork
from dockyard.sql import SqlModule, SqlUnitOfWork
from examples.shop.components.orders.domain.order import Order
from examples.shop.shared_kernel.events import OrderPaid, OrderPlaced
from examples.shop.shared_kernel.ids import OrderId

FINAL_STATUS = "paid"
"""Nothing happens to an order after it is paid: its stream ends there."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderStatus:
    order_id: OrderId
    status: str
    version: int
    """The stream version of the event that set it: 1 for ``placed``, 2 for ``paid``."""
    recorded_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class WatchOrder(StreamRequest[OrderStatus]):
    order_id: OrderId


class OrderChanges:
    """Which orders changed, told to the streams watching them (one per process)."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def watch(self, order_id: str) -> Iterator[asyncio.Event]:
        """While open, the event is set each time a change of ``order_id`` has committed."""
        changed = asyncio.Event()
        watchers = self._watchers.setdefault(order_id, set())
        watchers.add(changed)
        try:
            yield changed
        finally:
            watchers.discard(changed)
            if not watchers:
                del self._watchers[order_id]

    def changed(self, order_id: str) -> None:
        for watcher in self._watchers.get(order_id, ()):
            watcher.set()


class _NoticeAfterCommit:
    def __init__(self, uow: SqlUnitOfWork, changes: OrderChanges) -> None:
        self._uow = uow
        self._changes = changes

    def notice(self, order_id: str) -> None:
        # Handlers run inside the transaction that stores the event: tell the watchers only
        # once it has committed, so that what they read next has the change.
        self._uow.after_commit(partial(self._changes.changed, order_id))


class NoticeOrderPlaced(_NoticeAfterCommit, EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        self.notice(event.order_id)


class NoticeOrderPaid(_NoticeAfterCommit, EventHandler[OrderPaid]):
    async def handle(self, event: OrderPaid, /) -> None:
        self.notice(event.order_id)


class WatchOrderHandler(StreamHandler[WatchOrder, OrderStatus]):
    def __init__(self, events: EventStore, uow: UnitOfWork, changes: OrderChanges) -> None:
        self._events = events
        self._uow = uow
        self._changes = changes

    async def handle(self, request: WatchOrder, /) -> AsyncIterator[OrderStatus]:
        order = Order.replay(request.order_id, [])
        with self._changes.watch(request.order_id) as changed:  # before reading: none missed
            while True:
                changed.clear()
                recorded = await self._events.read_stream(
                    order.stream_id, from_version=order.version + 1
                )
                # End the read's transaction: the stream's scope lasts as long as the client
                # listens, and on SQLite an open transaction holds the database's write lock.
                await self._uow.rollback()
                for event in recorded:
                    order.replay_more([event.data])
                    yield OrderStatus(
                        order_id=order.order_id,
                        status=order.status,
                        version=event.stream_version,
                        recorded_at=event.recorded_at,
                    )
                if order.status == FINAL_STATUS:
                    return
                await changed.wait()


@module(
    providers=[singleton(OrderChanges)],
    imports=[SqlModule],
    handlers=[NoticeOrderPlaced, NoticeOrderPaid, WatchOrderHandler],
)
class OrderStatusModule:
    """What the web pages add to the shop: watching an order's status live."""
