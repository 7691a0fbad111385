"""The orders component: imports inventory and payments through their exported services."""

from __future__ import annotations

from dockyard import module, scoped, singleton
from examples.shop.components.inventory.module import InventoryModule
from examples.shop.components.orders.application.place_order import OrderService
from examples.shop.components.orders.domain.order import OrderRepository
from examples.shop.components.orders.infra.memory import InMemoryOrderRepository
from examples.shop.components.payments.module import PaymentsModule
from examples.shop.infra.lifecycle import AnnounceLifecycle


@module(
    providers=[singleton(OrderRepository, InMemoryOrderRepository), scoped(OrderService)],
    imports=[InventoryModule, PaymentsModule],
    extensions=[AnnounceLifecycle()],
    exports=[OrderService],
)
class OrdersModule: ...
