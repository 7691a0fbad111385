"""A payment provider that accepts everything (the demo's bank)."""

from __future__ import annotations

import itertools

from examples.shop.shared_kernel.ids import CustomerId


class AcceptingGateway:
    def __init__(self) -> None:
        self._references = itertools.count(1)

    def charge(self, customer_id: CustomerId, amount_cents: int, currency: str) -> str:
        return f"pay-{next(self._references):04d}"
