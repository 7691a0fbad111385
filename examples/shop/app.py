"""The composition root: the shop is its components plus shared infrastructure."""

from __future__ import annotations

from dockyard import App, module
from dockyard.messaging import MessagingSettings
from examples.shop.components.inventory.module import InventoryModule
from examples.shop.components.orders.module import OrdersModule
from examples.shop.components.payments.module import PaymentsModule
from examples.shop.infra.module import InfraModule
from examples.shop.infra.settings import ShopSettings
from examples.shop.ui.narrate import NarrateRequests


@module(
    imports=[
        InfraModule.register(ShopSettings(database_url="memory://")),
        InventoryModule,
        PaymentsModule,
        OrdersModule,
    ]
)
class ShopModule: ...


def build_app() -> App:
    return App.build(ShopModule, messaging=MessagingSettings(behaviors=[NarrateRequests()]))
