"""The inventory component: stock levels stay inside; it listens for placed orders."""

from __future__ import annotations

from dockyard import module, scoped, singleton
from examples.shop.components.inventory.application.reserve_stock import ReserveStock
from examples.shop.components.inventory.application.service import InventoryService
from examples.shop.components.inventory.domain.stock import StockLevels
from examples.shop.components.inventory.infra.memory import InMemoryStockLevels
from examples.shop.infra.lifecycle import AnnounceLifecycle


@module(
    providers=[singleton(StockLevels, InMemoryStockLevels), scoped(InventoryService)],
    handlers=[ReserveStock],
    extensions=[AnnounceLifecycle()],
    exports=[InventoryService],
)
class InventoryModule: ...
