"""Inventory use cases."""

from __future__ import annotations

from examples.shop.components.inventory.domain.stock import OutOfStockError, StockLevels
from examples.shop.shared_kernel.ids import Sku


class InventoryService:
    def __init__(self, stock: StockLevels) -> None:
        self._stock = stock

    def reserve(self, sku: Sku, quantity: int) -> int:
        """Take ``quantity`` of ``sku`` from stock; return what is left."""
        available = self._stock.available(sku)
        if quantity > available:
            raise OutOfStockError(sku, quantity, available)
        self._stock.take(sku, quantity)
        return self._stock.available(sku)

    def release(self, sku: Sku, quantity: int) -> int:
        """Put ``quantity`` of ``sku`` back (a reservation undone); return what is left."""
        self._stock.put_back(sku, quantity)
        return self._stock.available(sku)
