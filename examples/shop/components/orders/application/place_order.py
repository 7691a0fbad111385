"""Placing an order: a command, answered by the orders component alone."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.messaging import Command, CommandHandler, IPublisher
from examples.shop.components.orders.domain.order import Order, OrderLine, OrderRepository
from examples.shop.infra.settings import Clock
from examples.shop.shared_kernel.events import LineItem, OrderPlaced
from examples.shop.shared_kernel.ids import CustomerId, OrderId, next_order_id


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder(Command[OrderId]):
    customer_id: CustomerId
    lines: tuple[OrderLine, ...]


class PlaceOrderHandler(CommandHandler[PlaceOrder, OrderId]):
    def __init__(self, orders: OrderRepository, clock: Clock, events: IPublisher) -> None:
        self._orders = orders
        self._clock = clock
        self._events = events

    async def handle(self, command: PlaceOrder, /) -> OrderId:
        order = Order.place(next_order_id(), command.customer_id, command.lines, self._clock.now())
        self._orders.add(order)
        # Local handlers run inline, in this scope. If one refuses (inventory, say), the order
        # must not stay placed; a SQL unit of work would roll back, in memory we take it back.
        try:
            await self._events.publish(
                OrderPlaced(
                    order_id=order.order_id,
                    customer_id=order.customer_id,
                    lines=tuple(LineItem(sku=x.sku, quantity=x.quantity) for x in order.lines),
                    total_cents=order.total_cents,
                )
            )
        except Exception:
            self._orders.remove(order.order_id)
            raise
        return order.order_id
