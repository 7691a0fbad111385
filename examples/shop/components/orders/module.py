"""The orders component: event-sourced; it imports no other component, only the database."""

from __future__ import annotations

from dockyard import module, scoped
from dockyard.sql import SqlModule
from examples.shop.components.orders.application.place_order import PlaceOrderHandler
from examples.shop.components.orders.application.queries import GetOrderHandler, MarkOrderPaid
from examples.shop.components.orders.application.repository import Orders
from examples.shop.infra.lifecycle import AnnounceLifecycle


@module(
    providers=[scoped(Orders)],
    imports=[SqlModule],
    handlers=[PlaceOrderHandler, GetOrderHandler, MarkOrderPaid],
    extensions=[AnnounceLifecycle()],
)
class OrdersModule: ...
