"""The scripted demo `make demo` runs: it prints, step by step, what the shop does."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from dockyard import App, module, scoped
from dockyard.eventsourcing import EventStore
from dockyard.exceptions import ModuleConfigurationError
from dockyard.testing import wait_for_projections
from examples.shop.app import build_app, shop_module
from examples.shop.components.inventory.domain.stock import OutOfStockError, StockLevels
from examples.shop.components.inventory.module import InventoryModule
from examples.shop.components.orders.application.place_order import PlaceOrder
from examples.shop.components.orders.application.queries import (
    CountCustomerOrders,
    GetOrder,
    ListOrderSummaries,
)
from examples.shop.components.orders.domain.order import OrderLine
from examples.shop.shared_kernel.ids import CustomerId, Sku
from examples.shop.ui.console import say, step


class StockReport:
    """A report that reaches into inventory's internals — the boundary check stops it."""

    def __init__(self, stock: StockLevels) -> None:
        self.stock = stock


def describe(app: App) -> None:
    for node in app.modules:
        imports = ", ".join(m.name for m in node.imports) or "-"
        exports = ", ".join(sorted(t.__name__ for t in node.exported)) or "-"
        say(f"{node.name:<16} imports: {imports:<58} exports: {exports}")
    say("")
    for message in app.messages:
        handlers = ", ".join(f"{h.handler.__name__} ({h.module})" for h in message.handlers)
        say(f"{message.kind:<7} {message.message_type.__name__:<16} -> {handlers}")


async def run() -> None:
    with tempfile.TemporaryDirectory(prefix="dockyard-shop-") as folder:
        await _run(Path(folder) / "shop.sqlite")


async def _run(database: Path) -> None:
    step("1. Build the shop from its modules (boundaries and handlers are checked now)")
    app = build_app(database)
    describe(app)

    step("2. Start the app: module hooks run, dependencies first")
    async with app:
        step("3. Place an order by command; OrderPlaced fans out to inventory and payments")
        order_id = await app.send(
            PlaceOrder(
                customer_id=CustomerId("c-ada"),
                lines=(OrderLine(Sku("kettle"), 1), OrderLine(Sku("mug"), 2)),
            )
        )
        view = await app.send(GetOrder(order_id=order_id))
        say(f"{view.order_id}: {view.status}, {view.total_cents / 100:.2f} EUR")

        step("4. The order is its events, stored in SQLite with the transaction that made them")
        async with app.scope() as scope:
            store = await scope.get(EventStore)
            for recorded in await store.read_stream(f"Order-{order_id}"):
                say(
                    f"#{recorded.global_position} {recorded.stream_id} "
                    f"v{recorded.stream_version} {recorded.type_name}"
                )
        say(f"reloaded from its stream: version {view.version}, {view.status}")

        step("5. Read models: a worker runs the catch-up projection; the inline one never lags")
        stop = asyncio.Event()
        worker = [asyncio.create_task(s.run(stop)) for s in app.background_services()]
        say(f"worker running: {', '.join(s.name for s in app.background_services())}")
        await app.send(
            PlaceOrder(customer_id=CustomerId("c-ada"), lines=(OrderLine(Sku("teapot"), 1),))
        )
        say(f"orders of c-ada (inline): {await app.send(CountCustomerOrders(customer_id='c-ada'))}")
        await wait_for_projections(app)
        for order, customer, total, status in await app.send(ListOrderSummaries()):
            say(f"summary (catch-up): {order} {customer} {total / 100:.2f} EUR {status}")
        stop.set()
        await asyncio.gather(*worker)

        step("6. A third order asks for more teapots than the shop has")
        try:
            await app.send(
                PlaceOrder(customer_id=CustomerId("c-bob"), lines=(OrderLine(Sku("teapot"), 3),))
            )
        except OutOfStockError as exc:
            say(f"refused by inventory: {exc}")
        async with app.scope() as scope:
            store = await scope.get(EventStore)
            kept = await store.read_all()
            say(f"the transaction rolled back: still {len(kept)} events in the store")
        count = await app.send(CountCustomerOrders(customer_id="c-bob"))
        say(f"orders of c-bob (inline): {count}; nothing of the refused order was kept")

        step("7. The stop hooks run in reverse order")

    step("8. A report module that reaches into inventory's internals does not build")

    @module(providers=[scoped(StockReport)], imports=[InventoryModule])
    class ReportingModule: ...

    @module(imports=[shop_module(database), ReportingModule])
    class ShopWithReports: ...

    try:
        App.build(ShopWithReports)
    except ModuleConfigurationError as exc:
        for line in str(exc).splitlines():
            say(line)
