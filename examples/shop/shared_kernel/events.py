"""Integration events: the contracts components talk through, instead of calling each other."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.messaging import Event
from examples.shop.shared_kernel.ids import CustomerId, OrderId, Sku


@dataclass(frozen=True, slots=True, kw_only=True)
class LineItem:
    sku: Sku
    quantity: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPlaced(Event):
    order_id: OrderId
    customer_id: CustomerId
    lines: tuple[LineItem, ...]
    total_cents: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PaymentCaptured(Event):
    order_id: OrderId
    amount_cents: int
    reference: str
