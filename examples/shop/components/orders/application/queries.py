"""Reading orders, and recording their payment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dockyard.messaging import EventHandler, Query, QueryHandler
from examples.shop.components.orders.application.repository import Orders
from examples.shop.shared_kernel.events import PaymentCaptured
from examples.shop.shared_kernel.ids import OrderId
from examples.shop.ui.console import say_meanwhile


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderView:
    order_id: OrderId
    status: str
    total_cents: int
    payment_reference: str | None
    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GetOrder(Query[OrderView]):
    order_id: OrderId


class GetOrderHandler(QueryHandler[GetOrder, OrderView]):
    def __init__(self, orders: Orders) -> None:
        self._orders = orders

    async def handle(self, query: GetOrder, /) -> OrderView:
        order = await self._orders.get(query.order_id)
        return OrderView(
            order_id=order.order_id,
            status=order.status,
            total_cents=order.total_cents,
            payment_reference=order.payment_reference,
            version=order.version,
        )


class MarkOrderPaid(EventHandler[PaymentCaptured]):
    """Payments tells orders the money is in; orders never calls payments."""

    def __init__(self, orders: Orders) -> None:
        self._orders = orders

    async def handle(self, event: PaymentCaptured, /) -> None:
        order = await self._orders.get(event.order_id)
        order.mark_paid(event.reference)
        await self._orders.save(order)
        say_meanwhile(f"   orders: {event.order_id} marked paid ({event.reference})")


class OrderReadModels(Protocol):
    """Port: the read models projections keep (see ``infra/read_models.py``)."""

    async def summaries(self) -> list[tuple[str, str, int, str]]: ...

    async def orders_of(self, customer_id: str) -> int: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ListOrderSummaries(Query[list[tuple[str, str, int, str]]]):
    """Order id, customer, total and status of every order, as the catch-up projection has them."""


class ListOrderSummariesHandler(QueryHandler[ListOrderSummaries, list[tuple[str, str, int, str]]]):
    def __init__(self, read_models: OrderReadModels) -> None:
        self._read_models = read_models

    async def handle(self, query: ListOrderSummaries, /) -> list[tuple[str, str, int, str]]:
        return await self._read_models.summaries()


@dataclass(frozen=True, slots=True, kw_only=True)
class CountCustomerOrders(Query[int]):
    customer_id: str


class CountCustomerOrdersHandler(QueryHandler[CountCustomerOrders, int]):
    def __init__(self, read_models: OrderReadModels) -> None:
        self._read_models = read_models

    async def handle(self, query: CountCustomerOrders, /) -> int:
        return await self._read_models.orders_of(query.customer_id)
