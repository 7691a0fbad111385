"""What the demo does and prints, the same whether the apps share a process or not."""

from __future__ import annotations

import asyncio
import time

import sqlalchemy as sa

from dockyard import App
from dockyard.outbox import OutboxStore
from dockyard.sql import Database, inbox_table
from examples.shop.components.orders.application.place_order import PlaceOrder
from examples.shop.components.orders.application.queries import GetOrder, OrderView
from examples.shop.components.orders.domain.order import OrderLine
from examples.shop.shared_kernel.ids import CustomerId, OrderId, Sku
from examples.shop.ui.console import say, step


async def outbox_and_inbox(app: App) -> str:
    """``"outbox: 1 delivered, inbox: 1 handled"``: what left and what arrived."""
    counts = await (await app.get(OutboxStore)).counts()
    outbox = ", ".join(f"{n} {status.value}" for status, n in counts.items() if n) or "empty"
    database = await app.get(Database)
    async with database.engine.connect() as connection:
        handled = await connection.scalar(sa.select(sa.func.count()).select_from(inbox_table))
    return f"outbox: {outbox}; inbox: {handled} handled"


async def wait_until_paid(orders: App, order_id: OrderId, within: float = 30.0) -> OrderView:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        view = await orders.send(GetOrder(order_id=order_id))
        if view.status == "paid":
            return view
        await asyncio.sleep(0.02)
    msg = f"{order_id} was not paid within {within:.0f} s: is payments running?"
    raise TimeoutError(msg)


async def place_order_and_wait(orders: App) -> OrderView:
    """Steps 3 and 4, in the orders app while its worker runs."""
    step("3. Orders: place an order; OrderPlaced goes to the outbox with the order's events")
    order_id = await orders.send(
        PlaceOrder(
            customer_id=CustomerId("c-ada"),
            lines=(OrderLine(Sku("kettle"), 1), OrderLine(Sku("mug"), 2)),
        )
    )
    view = await orders.send(GetOrder(order_id=order_id))
    # Its status may already be "paid": the workers run meanwhile, even across processes.
    say(f"{view.order_id} committed: {view.total_cents / 100:.2f} EUR")

    step("4. The relay publishes it; payments charges and answers PaymentCaptured the same way")
    view = await wait_until_paid(orders, order_id)
    say(f"{view.order_id}: {view.status} ({view.payment_reference})")
    say(f"[orders] {await outbox_and_inbox(orders)}")
    return view
