"""Identifiers shared by every component."""

from __future__ import annotations

import itertools
from typing import NewType

OrderId = NewType("OrderId", str)
CustomerId = NewType("CustomerId", str)
Sku = NewType("Sku", str)

_order_numbers = itertools.count(1)


def next_order_id() -> OrderId:
    return OrderId(f"order-{next(_order_numbers):04d}")
