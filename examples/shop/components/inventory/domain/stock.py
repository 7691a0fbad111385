"""Stock levels: how many of each item the shop can still sell."""

from __future__ import annotations

from typing import Protocol

from examples.shop.shared_kernel.ids import Sku


class OutOfStockError(Exception):
    def __init__(self, sku: Sku, wanted: int, available: int) -> None:
        self.sku, self.wanted, self.available = sku, wanted, available
        super().__init__(f"only {available} of {sku} left, {wanted} wanted")


class StockLevels(Protocol):
    """Port: where stock levels are kept."""

    def available(self, sku: Sku) -> int: ...

    def take(self, sku: Sku, quantity: int) -> None: ...

    def put_back(self, sku: Sku, quantity: int) -> None: ...
