"""The runner: both apps in one process (``memory``) or in two (``rabbit``, ``nats``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from examples.shop.ui.console import say, step
from examples.shop_distributed.apps import (
    declare_groups,
    inbox_of,
    orders_app,
    payments_app,
    transport_for,
)
from examples.shop_distributed.story import outbox_and_inbox, place_order_and_wait

ROOT = Path(__file__).resolve().parents[2]


async def run(broker: str, namespace: str = "shop") -> None:
    say(f"orders routes OrderPlaced to {inbox_of(namespace, 'payments')!r}; payments routes")
    say(f"PaymentCaptured to {inbox_of(namespace, 'orders')!r}; each app has its own database")
    with tempfile.TemporaryDirectory(prefix="dockyard-shop-distributed-") as folder:
        if broker == "memory":
            await _in_one_process(Path(folder), namespace)
        else:
            await _in_two_processes(broker, Path(folder), namespace)


async def _in_one_process(folder: Path, namespace: str) -> None:
    from dockyard.transport.memory import InMemoryTransport

    step("1. One process: the in-memory transport stands in for the broker")
    transport = InMemoryTransport()
    await declare_groups(transport, namespace)
    orders = orders_app(folder, transport, namespace)
    payments = payments_app(folder, transport, namespace)

    step("2. Start both apps and their workers (relay, listener, projections)")
    stop = asyncio.Event()
    async with orders, payments:
        workers = [
            asyncio.create_task(orders.run_worker(stop=stop)),
            asyncio.create_task(payments.run_worker(stop=stop)),
        ]
        for name, app in (("orders", orders), ("payments", payments)):
            say(f"[{name}] worker running: {', '.join(s.name for s in app.background_services())}")
        try:
            await place_order_and_wait(orders)
        finally:
            step("5. Stop: the workers finish in-flight work")
            stop.set()
            await asyncio.gather(*workers)
        say(f"[payments] stopped; {await outbox_and_inbox(payments)}")


async def _in_two_processes(broker: str, folder: Path, namespace: str) -> None:
    step(f"1. Declare both consumer groups on {broker} (a deployment does this before the apps)")
    transport = transport_for(broker, "setup")
    try:
        await declare_groups(transport, namespace)
    finally:
        await transport.close()

    step("2. Start payments and orders, each in its own process with its own SQLite database")
    payments = _start("payments", broker, folder, namespace)
    orders = _start("orders", broker, folder, namespace)
    try:
        code = await asyncio.to_thread(orders.wait, 60)
    finally:
        step("5. Stop payments with SIGTERM: its worker finishes in-flight work")
        for process in (orders, payments):
            if process.poll() is None:
                process.terminate()
        for process in (orders, payments):
            await asyncio.to_thread(process.wait, 15)
    if code != 0:
        msg = f"the orders process failed (exit code {code})"
        raise RuntimeError(msg)


def _start(role: str, broker: str, folder: Path, namespace: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - this interpreter, our module, our arguments
        [
            sys.executable,
            "-m",
            "examples.shop_distributed.service",
            role,
            broker,
            str(folder),
            namespace,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # lines in the order they happen
    )
