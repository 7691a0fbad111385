"""Charging customers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from examples.shop.shared_kernel.ids import CustomerId, OrderId


@dataclass(frozen=True, slots=True)
class Receipt:
    order_id: OrderId
    amount_cents: int
    currency: str
    reference: str


class PaymentGateway(Protocol):
    """Port: the payment provider."""

    def charge(self, customer_id: CustomerId, amount_cents: int, currency: str) -> str: ...
