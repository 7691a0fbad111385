"""What the shop's two HTTP APIs share (``http_fastapi.py``, ``http_litestar.py``).

The web process serves the shop app (orders, inventory, the order status stream) and runs
its background services — the outbox relay that tells payments, the consumer that hears back
from it, the catch-up projection — so an order placed over HTTP goes from ``placed`` to
``paid`` on its own, as in ``make demo``. The payments app runs beside it in the same
process, on the same in-memory transport: the shop's modules are the demo's, unchanged.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from dockyard import App, module
from dockyard.integrations import ProblemMapping
from dockyard.messaging import MessagingSettings
from dockyard.sql import SqlModule
from dockyard.transport import Transport
from examples.shop.app import build_payments_app, shop_module
from examples.shop.components.inventory.domain.stock import OutOfStockError
from examples.shop.components.orders.application.place_order import PlaceOrder
from examples.shop.components.orders.domain.order import EmptyOrderError, OrderLine
from examples.shop.shared_kernel.ids import CustomerId, Sku
from examples.shop.ui.narrate import NarrateCommands
from examples.shop.ui.order_status import OrderStatusModule

ItemSku = Literal["kettle", "teapot", "mug"]
"""What the shop sells (the prices in ``orders.domain.order``); anything else is a 422."""


@dataclass(frozen=True, slots=True)
class NewOrderLine:
    sku: ItemSku
    quantity: int


@dataclass(frozen=True, slots=True)
class NewOrder:
    """The body of ``POST /orders``."""

    customer_id: str
    lines: list[NewOrderLine]

    def command(self) -> PlaceOrder:
        return PlaceOrder(
            customer_id=CustomerId(self.customer_id),
            lines=tuple(OrderLine(Sku(line.sku), line.quantity) for line in self.lines),
        )


def new_database() -> Path:
    """A new SQLite file in a temporary folder, removed when the process exits."""
    folder = tempfile.mkdtemp(prefix="dockyard-shop-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return Path(folder) / "shop.sqlite"


def build_web_apps(database: Path, transport: Transport) -> tuple[App, App]:
    """The shop app the web serves (the demo's shop plus ``OrderStatusModule``) and payments."""

    # SqlModule: the shop's start-up hooks get the `Database` from the root, as they do when
    # the demo's `ShopModule` is the root
    @module(imports=[shop_module(database, transport), SqlModule, OrderStatusModule])
    class ShopWeb: ...

    shop = App.build(ShopWeb, messaging=MessagingSettings(behaviors=[NarrateCommands()]))
    return shop, build_payments_app(transport)


def problems() -> ProblemMapping:
    """The shop's refusals as problem details; their messages are written for customers."""
    return (
        ProblemMapping()
        .add(OutOfStockError, 409, title="Out of stock", detail=str)
        .add(EmptyOrderError, 422, title="Empty order", detail=str)
    )


@asynccontextmanager
async def running(app: App) -> AsyncIterator[None]:
    """Start ``app`` and run its background services until the block ends.

    For the payments app, which has no routes: the web integration starts and supervises the
    shop app, whose routes they are. Payments' services are in-memory (its outbox, the
    transport), so they have no outage to be supervised through; one that fails raises here
    when the server stops.
    """
    async with app:
        stop = asyncio.Event()
        services = [
            asyncio.create_task(service.run(stop), name=service.name)
            for service in app.background_services()
        ]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*services)


def order_page() -> str:
    """The HTML page: a form to place an order and its status, live over SSE."""
    return resources.files(__package__).joinpath("order_page.html").read_text(encoding="utf-8")
