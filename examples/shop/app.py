"""The composition root: the shop is its components plus shared infrastructure."""

from __future__ import annotations

from dockyard import App, module
from examples.shop.components.orders.module import OrdersModule
from examples.shop.infra.module import InfraModule
from examples.shop.infra.settings import ShopSettings


@module(imports=[InfraModule.register(ShopSettings(database_url="memory://")), OrdersModule])
class ShopModule: ...


def build_app() -> App:
    return App.build(ShopModule)
