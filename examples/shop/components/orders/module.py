"""The orders component: it imports no other component; events carry what it needs to say."""

from __future__ import annotations

from dockyard import module, singleton
from examples.shop.components.orders.application.place_order import PlaceOrderHandler
from examples.shop.components.orders.application.queries import GetOrderHandler, MarkOrderPaid
from examples.shop.components.orders.domain.order import OrderRepository
from examples.shop.components.orders.infra.memory import InMemoryOrderRepository
from examples.shop.infra.lifecycle import AnnounceLifecycle


@module(
    providers=[singleton(OrderRepository, InMemoryOrderRepository)],
    handlers=[PlaceOrderHandler, GetOrderHandler, MarkOrderPaid],
    extensions=[AnnounceLifecycle()],
)
class OrdersModule: ...
