"""Integration events: the contracts components talk through, instead of calling each other.

The orders component also stores ``OrderPlaced`` and ``OrderPaid`` as its own events, under
stable type names (``@event_type``), so renaming a class never breaks the stored history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dockyard.messaging import Event
from dockyard.serialization import event_type
from examples.shop.shared_kernel.ids import CustomerId, OrderId, Sku


@dataclass(frozen=True, slots=True, kw_only=True)
class LineItem:
    sku: Sku
    quantity: int


@event_type("shop.order-placed")
@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced(Event):
    order_id: OrderId
    customer_id: CustomerId
    lines: tuple[LineItem, ...]
    total_cents: int
    placed_at: datetime


@event_type("shop.order-paid")
@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPaid(Event):
    order_id: OrderId
    reference: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentCaptured(Event):
    order_id: OrderId
    amount_cents: int
    reference: str
