"""The orders component: event-sourced; it imports no other component, only the database."""

from __future__ import annotations

from dockyard import module, scoped
from dockyard.projections import ProjectionsModule
from dockyard.sql import SqlModule
from examples.shop.components.orders.application.place_order import PlaceOrderHandler
from examples.shop.components.orders.application.queries import (
    CountCustomerOrdersHandler,
    GetOrderHandler,
    ListOrderSummariesHandler,
    MarkOrderPaid,
    OrderReadModels,
)
from examples.shop.components.orders.application.repository import Orders
from examples.shop.components.orders.infra.read_models import (
    CreateReadModelTables,
    CustomerOrderCounts,
    OrderSummaries,
    SqlOrderReadModels,
)
from examples.shop.infra.lifecycle import AnnounceLifecycle


@module(
    providers=[scoped(Orders), scoped(OrderReadModels, SqlOrderReadModels)],
    imports=[
        SqlModule,
        ProjectionsModule.register(
            projections=[OrderSummaries], inline=[CustomerOrderCounts], imports=[SqlModule]
        ),
    ],
    handlers=[
        PlaceOrderHandler,
        GetOrderHandler,
        MarkOrderPaid,
        ListOrderSummariesHandler,
        CountCustomerOrdersHandler,
    ],
    extensions=[AnnounceLifecycle(), CreateReadModelTables()],
)
class OrdersModule: ...
