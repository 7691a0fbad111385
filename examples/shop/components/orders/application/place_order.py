"""Placing an order: reserve stock, charge the customer, keep the order."""

from __future__ import annotations

from examples.shop.components.inventory.application.service import InventoryService
from examples.shop.components.orders.domain.order import Order, OrderLine, OrderRepository
from examples.shop.components.payments.application.service import PaymentsService
from examples.shop.infra.settings import Clock
from examples.shop.shared_kernel.ids import CustomerId, OrderId, next_order_id


class OrderService:
    def __init__(
        self,
        orders: OrderRepository,
        inventory: InventoryService,
        payments: PaymentsService,
        clock: Clock,
    ) -> None:
        self._orders = orders
        self._inventory = inventory
        self._payments = payments
        self._clock = clock

    def place(self, customer_id: CustomerId, lines: tuple[OrderLine, ...]) -> Order:
        order = Order.place(next_order_id(), customer_id, lines, self._clock.now())
        for line in order.lines:
            self._inventory.reserve(line.sku, line.quantity)
        receipt = self._payments.charge(order.order_id, customer_id, order.total_cents)
        order.mark_paid(receipt.reference)
        self._orders.add(order)
        return order

    def get(self, order_id: OrderId) -> Order:
        return self._orders.get(order_id)
