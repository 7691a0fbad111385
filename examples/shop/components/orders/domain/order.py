"""The order, event-sourced: what a customer buys, and the rules for placing and paying it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dockyard.eventsourcing import Aggregate, applies
from examples.shop.shared_kernel.events import LineItem, OrderPaid, OrderPlaced
from examples.shop.shared_kernel.ids import CustomerId, OrderId, Sku

PRICES_CENTS = {Sku("kettle"): 3_499, Sku("teapot"): 2_250, Sku("mug"): 800}


class EmptyOrderError(ValueError):
    def __init__(self) -> None:
        super().__init__("an order needs at least one line")


class OrderNotPlacedError(ValueError):
    def __init__(self, order_id: str, status: str) -> None:
        super().__init__(f"order {order_id} is {status}, not placed")


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: Sku
    quantity: int

    @property
    def total_cents(self) -> int:
        return PRICES_CENTS[self.sku] * self.quantity


class Order(Aggregate):
    """Stored as its events in the stream ``Order-{id}``."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.status = "new"
        self.customer_id = CustomerId("")
        self.total_cents = 0
        self.payment_reference: str | None = None

    @property
    def order_id(self) -> OrderId:
        return OrderId(self.id)

    def place(self, customer_id: CustomerId, lines: tuple[OrderLine, ...], now: datetime) -> None:
        if not lines:
            raise EmptyOrderError
        self.raise_event(
            OrderPlaced(
                order_id=self.order_id,
                customer_id=customer_id,
                lines=tuple(LineItem(sku=line.sku, quantity=line.quantity) for line in lines),
                total_cents=sum(line.total_cents for line in lines),
                placed_at=now,
            )
        )

    def mark_paid(self, reference: str) -> None:
        if self.status != "placed":
            raise OrderNotPlacedError(self.id, self.status)
        self.raise_event(OrderPaid(order_id=self.order_id, reference=reference))

    @applies
    def _placed(self, event: OrderPlaced) -> None:
        self.status = "placed"
        self.customer_id = event.customer_id
        self.total_cents = event.total_cents

    @applies
    def _paid(self, event: OrderPaid) -> None:
        self.status = "paid"
        self.payment_reference = event.reference
