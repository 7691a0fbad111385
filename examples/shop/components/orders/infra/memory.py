"""Orders kept in memory."""

from __future__ import annotations

from examples.shop.components.orders.domain.order import Order
from examples.shop.shared_kernel.ids import OrderId


class InMemoryOrderRepository:
    def __init__(self) -> None:
        self._orders: dict[OrderId, Order] = {}

    def add(self, order: Order) -> None:
        self._orders[order.order_id] = order

    def get(self, order_id: OrderId) -> Order:
        return self._orders[order_id]

    def remove(self, order_id: OrderId) -> None:
        del self._orders[order_id]
