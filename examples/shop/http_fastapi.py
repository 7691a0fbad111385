"""The shop over HTTP, on FastAPI: ``make serve`` runs it with uvicorn on SQLite.

    POST /orders                  place an order          201 {"order_id": ...}
    GET  /orders/{id}             the order               200 {"status": "placed", ...}
    GET  /orders/{id}/status      its statuses, live      text/event-stream
    GET  /                        a page that places an order and shows its status live

Routes only send messages; the shop's modules are the demo's (``examples/shop/ui/web.py``
puts them together). ``http_litestar.py`` is the same API on Litestar.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from dockyard import ISender
from dockyard.integrations.fastapi import (
    EventSourceResponse,
    FromDockyard,
    setup_dockyard,
    sse_response,
)
from dockyard.transport import Transport
from dockyard.transport.memory import InMemoryTransport
from examples.shop.components.orders.application.queries import GetOrder, OrderView
from examples.shop.shared_kernel.ids import OrderId
from examples.shop.ui.order_status import WatchOrder
from examples.shop.ui.web import (
    NewOrder,
    build_web_apps,
    new_database,
    order_page,
    problems,
    running,
)


def create_app(database: Path | None = None, *, transport: Transport | None = None) -> FastAPI:
    """The shop's FastAPI app (``uvicorn --factory examples.shop.http_fastapi:create_app``).

    Args:
        database: The SQLite file; by default a new one in a temporary folder.
        transport: What joins the shop and payments; by default an in-memory one.
    """
    shop, payments = build_web_apps(database or new_database(), transport or InMemoryTransport())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(payments):
            yield

    web = FastAPI(title="dockyard shop", lifespan=lifespan)
    setup_dockyard(web, shop, problems=problems(), background_services=True)

    @web.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return order_page()

    @web.post("/orders", status_code=201)
    async def place_order(order: NewOrder, sender: FromDockyard[ISender]) -> dict[str, str]:
        return {"order_id": await sender.send(order.command())}

    @web.get("/orders/{order_id}")
    async def get_order(order_id: str, sender: FromDockyard[ISender]) -> OrderView:
        return await sender.send(GetOrder(order_id=OrderId(order_id)))

    @web.get("/orders/{order_id}/status")
    async def order_status(
        order_id: str, request: Request, sender: FromDockyard[ISender]
    ) -> EventSourceResponse:
        await sender.send(GetOrder(order_id=OrderId(order_id)))  # an unknown order is a 404
        return sse_response(request, WatchOrder(order_id=OrderId(order_id)))

    return web
