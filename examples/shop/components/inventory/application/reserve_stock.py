"""Inventory reacts to a placed order by reserving its stock."""

from __future__ import annotations

from dockyard.messaging import EventHandler
from examples.shop.components.inventory.application.service import InventoryService
from examples.shop.shared_kernel.events import OrderPlaced
from examples.shop.ui.console import say


class ReserveStock(EventHandler[OrderPlaced]):
    def __init__(self, inventory: InventoryService) -> None:
        self._inventory = inventory

    async def handle(self, event: OrderPlaced, /) -> None:
        for line in event.lines:
            left = self._inventory.reserve(line.sku, line.quantity)
            say(f"   inventory: reserved {line.quantity} × {line.sku}, {left} left")
