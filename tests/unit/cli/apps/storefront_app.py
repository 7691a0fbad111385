"""An app with one of each thing ``dockyard describe`` and ``dockyard graph`` show.

The CLI tests copy it into a temporary folder as ``storefront/app.py`` and load
``storefront.app:app``: modules with imports, exports and each kind of provider, a command,
a query answered by a chain, a stream, an event with a local handler and an outbox route,
global and per-type behaviors, a consumer endpoint and a saga with a pivot and a fallback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard import App, Command, Event, Query, StreamRequest, module, scoped, singleton
from dockyard.consumer import ConsumerModule, listen
from dockyard.di import contextual, many, object_
from dockyard.messaging import (
    ChainHandler,
    CommandHandler,
    EventHandler,
    LoggingBehavior,
    MessagingSettings,
    PipelineBehavior,
    StreamHandler,
)
from dockyard.outbox import OutboxModule, route
from dockyard.sagas import Saga, SagasModule, SagaStep, pivot, step
from dockyard.transport.memory import InMemoryTransport


@dataclass(frozen=True)
class PlaceOrder(Command[str]):
    order_id: str


@dataclass(frozen=True)
class GetPrice(Query[int]):
    sku: str


@dataclass(frozen=True)
class WatchOrder(StreamRequest[str]):
    order_id: str


@dataclass(frozen=True)
class OrderPlaced(Event):
    order_id: str


@dataclass(frozen=True)
class Currency:
    code: str = "EUR"


class Prices:
    def __init__(self, currency: Currency) -> None:
        self.currency = currency


class Discount:
    pass


class Orders:
    def __init__(self, prices: Prices) -> None:
        self.prices = prices


@dataclass(frozen=True)
class RequestId:
    value: str


class PlaceOrderHandler(CommandHandler[PlaceOrder, str]):
    def __init__(self, orders: Orders) -> None:
        self._orders = orders

    async def handle(self, request: PlaceOrder, /) -> str:
        return request.order_id


class CachedPrice(ChainHandler[GetPrice, int]):
    async def handle(self, request: GetPrice, call_next: Callable[[], Awaitable[int]], /) -> int:
        return await call_next()


class ListPrice(ChainHandler[GetPrice, int]):
    def __init__(self, prices: Prices, discounts: Sequence[Discount]) -> None:
        self._prices = prices
        self._discounts = discounts

    async def handle(self, request: GetPrice, call_next: Callable[[], Awaitable[int]], /) -> int:
        return 100


class WatchOrderHandler(StreamHandler[WatchOrder, str]):
    async def handle(self, request: WatchOrder, /) -> AsyncIterator[str]:
        yield "placed"


class ReserveStock(EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        del event


class Audit(PipelineBehavior[Command[Any], Any]):
    async def handle(
        self, message: Command[Any], call_next: Callable[[], Awaitable[Any]], /
    ) -> Any:
        return await call_next()


@dataclass
class Checkout:
    order_id: str


class Reserve(SagaStep[Checkout]):
    async def act(self, state: Checkout, /) -> None:
        del state

    async def compensate(self, state: Checkout, /) -> None:
        del state


class Charge(SagaStep[Checkout]):
    async def act(self, state: Checkout, /) -> None:
        del state


class Invoice(SagaStep[Checkout]):
    async def act(self, state: Checkout, /) -> None:
        del state


class Ship(SagaStep[Checkout]):
    async def act(self, state: Checkout, /) -> None:
        del state


checkout = Saga(
    "checkout",
    version=2,
    state=Checkout,
    steps=[
        step("reserve", Reserve),
        pivot("charge", Charge, fallback=step("invoice", Invoice)),
        step("ship", Ship),
    ],
    compatible_with=[1],
)


@module(
    providers=[object_(Currency()), singleton(Prices), many(Discount, Discount)],
    exports=[Prices],
    handlers=[CachedPrice, ListPrice],
)
class PricingModule: ...


@module(
    imports=[PricingModule],
    providers=[scoped(Orders), contextual(RequestId)],
    handlers=[
        PlaceOrderHandler,
        WatchOrderHandler,
        ReserveStock,
        route(OrderPlaced).to("billing", partition_key=lambda e: e.order_id),
    ],
)
class OrdersModule: ...


@module(
    imports=[
        OutboxModule.register(transport=InMemoryTransport()),
        ConsumerModule.register(endpoints=[listen("storefront", group="orders")]),
        SagasModule.register(sagas=[checkout]),
        PricingModule,
        OrdersModule,
    ]
)
class Storefront: ...


app = App.build(
    Storefront,
    messaging=MessagingSettings(
        behaviors=[LoggingBehavior()], message_behaviors={PlaceOrder: [Audit()]}
    ),
)
