"""The scripted demo `make demo` runs: it prints, step by step, what the shop does."""

from __future__ import annotations

from dockyard import App, module, scoped
from dockyard.exceptions import ModuleConfigurationError
from examples.shop.app import ShopModule, build_app
from examples.shop.components.inventory.domain.stock import OutOfStockError, StockLevels
from examples.shop.components.orders.application.place_order import OrderService
from examples.shop.components.orders.domain.order import OrderLine
from examples.shop.components.orders.module import OrdersModule
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
        say(f"{node.name:<16} imports: {imports:<40} exports: {exports}")


async def run() -> None:
    step("1. Build the shop from its modules (boundaries are checked now)")
    app = build_app()
    describe(app)

    step("2. Start the app: module hooks run, dependencies first")
    async with app:
        step("3. Place an order in one request scope")
        async with app.scope() as scope:
            orders = await scope.get(OrderService)
            order = orders.place(
                CustomerId("c-ada"),
                (OrderLine(Sku("kettle"), 1), OrderLine(Sku("mug"), 2)),
            )
            say(f"{order.order_id} for {order.customer_id}: {order.total_cents / 100:.2f} EUR")
            say(f"status {order.status}, payment {order.payment_reference}")

        step("4. A second order asks for more teapots than the shop has")
        async with app.scope() as scope:
            orders = await scope.get(OrderService)
            try:
                orders.place(CustomerId("c-bob"), (OrderLine(Sku("teapot"), 3),))
            except OutOfStockError as exc:
                say(f"refused: {exc}")

        step("5. The stop hooks run in reverse order")

    step("6. A report module that reaches into inventory's internals does not build")

    @module(providers=[scoped(StockReport)], imports=[OrdersModule])
    class ReportingModule: ...

    @module(imports=[ShopModule, ReportingModule])
    class ShopWithReports: ...

    try:
        App.build(ShopWithReports)
    except ModuleConfigurationError as exc:
        for line in str(exc).splitlines():
            say(line)
