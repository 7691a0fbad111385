"""One app in its own process: ``python -m examples.shop_distributed.service orders|payments
rabbit|nats <folder> <namespace>``. The runner (``python -m examples.shop_distributed``)
starts two of these.

payments runs its worker until SIGTERM; orders places an order, waits until it is paid,
then stops.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from examples.shop.ui.console import say
from examples.shop_distributed.apps import orders_app, payments_app, transport_for
from examples.shop_distributed.story import outbox_and_inbox, place_order_and_wait


async def serve(role: str, broker: str, folder: Path, namespace: str) -> None:
    transport = transport_for(broker, role)
    build = orders_app if role == "orders" else payments_app
    app = build(folder, transport, namespace)
    try:
        async with app:
            names = ", ".join(s.name for s in app.background_services())
            say(f"[{role}] worker running: {names}")
            if role == "payments":
                await app.run_worker()  # until SIGTERM
                say(f"[payments] stopped; {await outbox_and_inbox(app)}")
                return
            stop = asyncio.Event()
            worker = asyncio.create_task(app.run_worker(stop=stop))
            try:
                await place_order_and_wait(app)
            finally:
                stop.set()
                await worker
    finally:
        await transport.close()


if __name__ == "__main__":
    role, broker, folder, namespace = sys.argv[1:5]
    asyncio.run(serve(role, broker, Path(folder), namespace))
