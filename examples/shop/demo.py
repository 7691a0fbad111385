"""The scripted demo `make demo` runs: it prints, step by step, what the shop does."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

from dockyard import App, module, scoped
from dockyard.eventsourcing import EventStore
from dockyard.exceptions import ModuleConfigurationError
from dockyard.outbox import OutboxStatus, OutboxStore
from dockyard.sagas import SagaControl, SagaRecord, SagaStatus
from dockyard.testing import wait_for_projections
from dockyard.transport.memory import InMemoryTransport
from examples.shop.app import (
    build_checkout_app,
    build_payments_app,
    build_shipping_app,
    build_shop_app,
    shop_module,
)
from examples.shop.components.checkout.application.saga import CheckoutState
from examples.shop.components.checkout.application.start_checkout import CheckOut, CheckoutSaga
from examples.shop.components.checkout.infra.gateways import BackupGateway, CardGateway
from examples.shop.components.inventory.domain.stock import OutOfStockError, StockLevels
from examples.shop.components.inventory.module import InventoryModule
from examples.shop.components.orders.application.place_order import PlaceOrder
from examples.shop.components.orders.application.queries import (
    CountCustomerOrders,
    GetOrder,
    ListOrderSummaries,
    OrderView,
)
from examples.shop.components.orders.domain.order import OrderLine
from examples.shop.shared_kernel.ids import CustomerId, OrderId, Sku
from examples.shop.ui.console import holding_background_lines, print_held, say, step


class StockReport:
    """A report that reaches into inventory's internals — the boundary check stops it."""

    def __init__(self, stock: StockLevels) -> None:
        self.stock = stock


def _names(types: frozenset[type]) -> str:
    short = [t.__name__ for t in types]
    # Two exports may share a name (two modules' `Settings`, say).
    return ", ".join(
        sorted(
            f"{t.__module__.split('.')[1]}.{t.__name__}"
            if short.count(t.__name__) > 1
            else t.__name__
            for t in types
        )
    )


def describe(app: App, title: str) -> None:
    say(f"[{title}]")
    for node in app.modules:
        exports = _names(node.exported) or "-"
        say(f"  module {node.name:<16} exports: {exports}")
    for message in app.messages:
        handlers = ", ".join(f"{h.handler.__name__} ({h.module})" for h in message.handlers)
        say(f"  {message.kind:<7} {message.message_type.__name__:<19} -> {handlers}")


async def pending_in_outbox(app: App) -> str:
    store = await app.get(OutboxStore)
    count = (await store.counts()).get(OutboxStatus.PENDING, 0)
    return f"{count} message{'' if count == 1 else 's'}"


async def wait_until_paid(app: App, order_id: OrderId) -> OrderView:
    for _ in range(500):
        view = await app.send(GetOrder(order_id=order_id))
        if view.status == "paid":
            return view
        await asyncio.sleep(0.01)
    msg = f"{order_id} was not paid within 5 s"
    raise TimeoutError(msg)


async def run() -> None:
    with tempfile.TemporaryDirectory(prefix="dockyard-shop-") as folder:
        await _run(Path(folder) / "shop.sqlite")


async def _run(database: Path) -> None:
    step("1. Build two apps: the shop (orders, inventory) and payments, joined by events only")
    transport = InMemoryTransport()  # stands in for RabbitMQ or NATS
    shop = build_shop_app(database, transport)
    payments = build_payments_app(transport)
    say("transport: in memory, in this process (InMemoryTransport stands in for RabbitMQ/NATS)")
    say(f"shop database: SQLite file {database} (removed at the end)")
    describe(shop, "shop")
    describe(payments, "payments")

    step("2. Start both apps: module hooks run, dependencies first")
    with holding_background_lines():
        await _with_both_apps(shop, payments)

    _boundary_error(database)
    await _checkout_saga(database.with_name("checkout.sqlite"))
    step("11. Next: the same shop as two processes, over a real broker")
    say("python -m examples.shop_distributed rabbit   (RabbitMQ on localhost:5672; or nats)")


async def _with_both_apps(shop: App, payments: App) -> None:
    async with shop, payments:
        step("3. Place an order: stock is reserved inline; payments is told through the outbox")
        order_id = await shop.send(
            PlaceOrder(
                customer_id=CustomerId("c-ada"),
                lines=(OrderLine(Sku("kettle"), 1), OrderLine(Sku("mug"), 2)),
            )
        )
        view = await shop.send(GetOrder(order_id=order_id))
        say(f"{view.order_id}: {view.status}, {view.total_cents / 100:.2f} EUR")
        say(f"outbox: {await pending_in_outbox(shop)} waiting for the relay")

        step("4. The workers run: relays publish, consumers handle, the projection catches up")
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(shop.run_worker(stop=stop)),
            asyncio.create_task(payments.run_worker(stop=stop)),
        ]
        say("shop worker: " + ", ".join(s.name for s in shop.background_services()))
        say("payments worker: " + ", ".join(s.name for s in payments.background_services()))
        view = await wait_until_paid(shop, order_id)
        print_held()  # what the workers' handlers said meanwhile
        say(f"{view.order_id}: {view.status} ({view.payment_reference})")
        say(f"outbox: {await pending_in_outbox(shop)} waiting")

        await _show_the_stream(shop, order_id, view)
        await _read_models(shop)
        await _refused_order(shop)

        step("8. Stop: workers finish in-flight work, then the stop hooks run in reverse order")
        stop.set()
        await asyncio.gather(*workers)


async def _show_the_stream(shop: App, order_id: OrderId, view: OrderView) -> None:
    step("5. The order is its events, in SQLite with the transaction that made them")
    async with shop.scope() as scope:
        store = await scope.get(EventStore)
        for recorded in await store.read_stream(f"Order-{order_id}"):
            say(
                f"#{recorded.global_position} {recorded.stream_id} "
                f"v{recorded.stream_version} {recorded.type_name}"
            )
    say(f"reloaded from its stream: version {view.version}, {view.status}")


async def _read_models(shop: App) -> None:
    step("6. Read models: the inline count never lags; the summaries follow the log")
    await shop.send(
        PlaceOrder(customer_id=CustomerId("c-ada"), lines=(OrderLine(Sku("teapot"), 1),))
    )
    count = await shop.send(CountCustomerOrders(customer_id="c-ada"))
    say(f"orders of c-ada (inline): {count}")
    await wait_until_paid(shop, OrderId("order-0002"))
    print_held()
    await wait_for_projections(shop)
    for order, customer, total, status in await shop.send(ListOrderSummaries()):
        say(f"summary (catch-up): {order} {customer} {total / 100:.2f} EUR {status}")


async def _refused_order(shop: App) -> None:
    step("7. A third order asks for more teapots than the shop has")
    try:
        await shop.send(
            PlaceOrder(customer_id=CustomerId("c-bob"), lines=(OrderLine(Sku("teapot"), 3),))
        )
    except OutOfStockError as exc:
        say(f"refused by inventory: {exc}")
    async with shop.scope() as scope:
        kept = await (await scope.get(EventStore)).read_all()
    say(f"the transaction rolled back: still {len(kept)} events in the store,")
    say(f"and {await pending_in_outbox(shop)} in the outbox: payments never heard of it")
    count = await shop.send(CountCustomerOrders(customer_id="c-bob"))
    say(f"orders of c-bob (inline): {count}")


def _boundary_error(database: Path) -> None:
    step("9. A report module that reaches into inventory's internals does not build")

    @module(providers=[scoped(StockReport)], imports=[InventoryModule])
    class ReportingModule: ...

    @module(imports=[shop_module(database, InMemoryTransport()), ReportingModule])
    class ShopWithReports: ...

    try:
        App.build(ShopWithReports)
    except ModuleConfigurationError as exc:
        for line in str(exc).splitlines():
            say(line)


async def _checkout_saga(database: Path) -> None:
    step("10. Checkout as a saga: reserve stock, charge (a backup gateway behind the card), ship")
    transport = InMemoryTransport()
    checkout, shipping = build_checkout_app(database, transport), build_shipping_app(transport)
    say("two more apps on one transport: checkout (inventory, the saga) and shipping")
    saga_log = logging.getLogger("dockyard.sagas")
    level = saga_log.level
    saga_log.setLevel(logging.ERROR)  # the failed attempts' warnings: the step log shows them
    try:
        await _two_checkouts(checkout, shipping)
    finally:
        saga_log.setLevel(level)


async def _two_checkouts(checkout: App, shipping: App) -> None:
    async with checkout, shipping:
        control = await checkout.get(SagaControl)
        for line in control.diagram("shop.checkout").splitlines():
            say(line)
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(checkout.run_worker(stop=stop)),
            asyncio.create_task(shipping.run_worker(stop=stop)),
        ]
        try:
            await _happy_and_failed(checkout, control)
        finally:
            stop.set()
            await asyncio.gather(*workers)


async def _happy_and_failed(checkout: App, control: SagaControl) -> None:
    say("")
    say("checkout-0001: 1 × kettle to Lyon; every gateway up")
    await checkout.send(
        CheckOut(order_id="checkout-0001", items={"kettle": 1}, amount_cents=3499, address="Lyon")
    )
    _say_instance(control, await _wait_until_finished(control, "checkout-0001"))

    say("")
    say("checkout-0002: 2 × teapot to Atlantis; the card gateway is down")
    (await checkout.get(CardGateway)).up = False
    await checkout.send(
        CheckOut(
            order_id="checkout-0002", items={"teapot": 2}, amount_cents=4500, address="Atlantis"
        )
    )
    _say_instance(control, await _wait_until_finished(control, "checkout-0002"))
    backup = await checkout.get(BackupGateway)
    say(f"backup gateway: charges kept {backup.charges}, refunded {backup.refunded}")
    breaker = (await checkout.get(CheckoutSaga)).breaker
    say(f"circuit breaker {breaker.name}: {breaker.state().value} (next: straight to backup)")
    say("the path checkout-0002 took:")
    for line in (await control.instance_diagram("checkout-0002")).splitlines():
        say(line)


async def _wait_until_finished(control: SagaControl, saga_id: str) -> SagaRecord:
    for _ in range(3000):
        record = await control.get(saga_id)
        if record.status not in (SagaStatus.RUNNING, SagaStatus.COMPENSATING):
            return record
        await asyncio.sleep(0.01)
    msg = f"saga {saga_id} did not finish within 30 s"
    raise TimeoutError(msg)


def _say_instance(control: SagaControl, record: SagaRecord) -> None:
    for entry in record.log:
        error = f": {entry.error}" if entry.error else ""
        say(f"  {entry.step:<14} {entry.kind.value:<12} attempt {entry.attempt}{error}")
    state = control.state(record)
    assert isinstance(state, CheckoutState)
    say(f"  what the steps did: {'; '.join(state.notes)}")
    paid, tracking = state.payment or "-", state.tracking or "-"
    say(f"{record.saga_id}: {record.status.value} (paid {paid}, tracking {tracking})")
