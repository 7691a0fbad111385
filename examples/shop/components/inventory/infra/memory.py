"""Stock levels kept in memory (the demo's warehouse)."""

from __future__ import annotations

from examples.shop.shared_kernel.ids import Sku


class InMemoryStockLevels:
    def __init__(self) -> None:
        self._levels: dict[Sku, int] = {Sku("kettle"): 5, Sku("teapot"): 2, Sku("mug"): 40}

    def available(self, sku: Sku) -> int:
        return self._levels.get(sku, 0)

    def take(self, sku: Sku, quantity: int) -> None:
        self._levels[sku] = self.available(sku) - quantity

    def put_back(self, sku: Sku, quantity: int) -> None:
        self._levels[sku] = self.available(sku) + quantity
