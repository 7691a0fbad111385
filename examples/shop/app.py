"""The composition root: the shop is its components plus shared infrastructure."""

from __future__ import annotations

from pathlib import Path

from dockyard import App, DynamicModule, module
from dockyard.messaging import MessagingSettings
from dockyard.sql import SqlModule
from examples.shop.components.inventory.module import InventoryModule
from examples.shop.components.orders.module import OrdersModule
from examples.shop.components.payments.module import PaymentsModule
from examples.shop.infra.module import InfraModule
from examples.shop.infra.settings import ShopSettings
from examples.shop.ui.narrate import NarrateRequests


def shop_module(database: Path) -> type:
    """The root module, with the event store in a SQLite file (WAL) at ``database``."""
    url = f"sqlite+aiosqlite:///{database}"
    infra: DynamicModule = InfraModule.register(ShopSettings(database_url=url))

    @module(
        imports=[
            infra,
            SqlModule.register(url, create_tables=True),
            InventoryModule,
            PaymentsModule,
            OrdersModule,
        ]
    )
    class ShopModule: ...

    return ShopModule


def build_app(database: Path) -> App:
    return App.build(
        shop_module(database), messaging=MessagingSettings(behaviors=[NarrateRequests()])
    )
