"""Placing an order: a command, answered by the orders component alone."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.messaging import Command, CommandHandler
from examples.shop.components.orders.application.repository import Orders
from examples.shop.components.orders.domain.order import OrderLine
from examples.shop.infra.settings import Clock
from examples.shop.shared_kernel.ids import CustomerId, OrderId, next_order_id


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder(Command[OrderId]):
    customer_id: CustomerId
    lines: tuple[OrderLine, ...]


class PlaceOrderHandler(CommandHandler[PlaceOrder, OrderId]):
    def __init__(self, orders: Orders, clock: Clock) -> None:
        self._orders = orders
        self._clock = clock

    async def handle(self, command: PlaceOrder, /) -> OrderId:
        order = self._orders.create(next_order_id())
        order.place(command.customer_id, command.lines, self._clock.now())
        # Appends OrderPlaced to the stream, then publishes it: inventory and payments handle
        # it inline, in this scope. If one refuses, the scope's transaction rolls back and
        # the order was never placed.
        await self._orders.save(order)
        return order.order_id
