"""The order: what a customer buys, and the rules for placing it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from examples.shop.shared_kernel.ids import CustomerId, OrderId, Sku

PRICES_CENTS = {Sku("kettle"): 3_499, Sku("teapot"): 2_250, Sku("mug"): 800}


class EmptyOrderError(ValueError):
    def __init__(self) -> None:
        super().__init__("an order needs at least one line")


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: Sku
    quantity: int

    @property
    def total_cents(self) -> int:
        return PRICES_CENTS[self.sku] * self.quantity


@dataclass(slots=True)
class Order:
    order_id: OrderId
    customer_id: CustomerId
    lines: tuple[OrderLine, ...]
    placed_at: datetime
    status: str = "placed"
    payment_reference: str | None = field(default=None)

    @classmethod
    def place(
        cls,
        order_id: OrderId,
        customer_id: CustomerId,
        lines: tuple[OrderLine, ...],
        now: datetime,
    ) -> Order:
        if not lines:
            raise EmptyOrderError
        return cls(order_id, customer_id, lines, now)

    @property
    def total_cents(self) -> int:
        return sum(line.total_cents for line in self.lines)

    def mark_paid(self, reference: str) -> None:
        self.status = "paid"
        self.payment_reference = reference


class OrderRepository(Protocol):
    """Port: where orders are kept."""

    def add(self, order: Order) -> None: ...

    def get(self, order_id: OrderId) -> Order: ...

    def remove(self, order_id: OrderId) -> None: ...
