"""A tour of messaging: send, stream, publish, a behavior, a chain and the message context."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from dockyard import App, module, scoped
from dockyard.messaging import (
    ChainHandler,
    Command,
    CommandHandler,
    Event,
    EventHandler,
    IPublisher,
    ISender,
    LoggingBehavior,
    MessageContext,
    MessagingSettings,
    Query,
    StreamHandler,
    StreamRequest,
)


class Orders:
    def __init__(self) -> None:
        self.placed: dict[str, list[str]] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder(Command[str]):
    items: list[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced(Event):
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListItems(StreamRequest[str]):
    order_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote(Query[float]):
    item: str


class PlaceOrderHandler(CommandHandler[PlaceOrder, str]):
    def __init__(self, orders: Orders, events: IPublisher) -> None:
        self.orders = orders
        self.events = events

    async def handle(self, request: PlaceOrder, /) -> str:
        order_id = f"o{len(self.orders.placed) + 1}"
        self.orders.placed[order_id] = request.items
        await self.events.publish(OrderPlaced(order_id=order_id))
        return order_id


class ListItemsHandler(StreamHandler[ListItems, str]):
    def __init__(self, orders: Orders) -> None:
        self.orders = orders

    async def handle(self, request: ListItems, /) -> AsyncIterator[str]:
        for item in self.orders.placed.get(request.order_id, []):
            yield item


NOTIFIED: list[str] = []


class Notify(EventHandler[OrderPlaced]):
    def __init__(self, context: MessageContext) -> None:
        self.context = context  # read it in handle(), not here

    async def handle(self, event: OrderPlaced, /) -> None:
        NOTIFIED.append(f"{event.order_id} caused by {self.context.causation_id}")


class ListPrice(ChainHandler[Quote, float]):
    async def handle(self, request: Quote, call_next: Callable[[], Awaitable[float]], /) -> float:
        return 9.5 if request.item == "book" else await call_next()


class DefaultPrice(ChainHandler[Quote, float]):
    async def handle(self, request: Quote, call_next: Callable[[], Awaitable[float]], /) -> float:
        return 1.0 if request.item else await call_next()  # the fallback: always answers


@module(
    providers=[scoped(Orders)],
    handlers=[PlaceOrderHandler, ListItemsHandler, Notify, ListPrice, DefaultPrice],
)
class OrdersModule: ...


async def main() -> None:
    settings = MessagingSettings(behaviors=[LoggingBehavior(level=logging.DEBUG)])
    async with App.build(OrdersModule, messaging=settings) as app:
        async with app.scope() as scope:  # one unit of work for both messages
            sender = await scope.get(ISender)
            order_id = await sender.send(PlaceOrder(items=["book", "pen"]), message_id="m-1")
            assert [item async for item in sender.stream(ListItems(order_id=order_id))] == [
                "book",
                "pen",
            ]
        assert NOTIFIED == ["o1 caused by m-1"]
        assert await app.send(Quote(item="book")) == 9.5
        assert await app.send(Quote(item="pen")) == 1.0
        assert [m.message_type.__name__ for m in app.messages] == [
            "PlaceOrder",
            "Quote",
            "ListItems",
            "OrderPlaced",
        ]


if __name__ == "__main__":
    asyncio.run(main())
