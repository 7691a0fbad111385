"""The shop's HTTP API of ``http_fastapi.py``, on Litestar: the same routes, the same modules.

``uvicorn --factory examples.shop.http_litestar:create_app``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from litestar import Litestar, MediaType, Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.response import Stream

from dockyard import ISender
from dockyard.integrations.litestar import DockyardPlugin, FromDockyard, Inject, sse_response
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

SENDER = {"sender": Inject(ISender)}


@get("/", media_type=MediaType.HTML)
async def page() -> str:
    return order_page()


@post("/orders", dependencies=SENDER)
async def place_order(data: JSONBody[NewOrder], sender: FromDockyard[ISender]) -> dict[str, str]:
    return {"order_id": await sender.send(data.command())}


@get("/orders/{order_id:str}", dependencies=SENDER)
async def get_order(order_id: FromPath[str], sender: FromDockyard[ISender]) -> OrderView:
    return await sender.send(GetOrder(order_id=OrderId(order_id)))


@get("/orders/{order_id:str}/status", dependencies=SENDER)
async def order_status(
    order_id: FromPath[str], request: Request[Any, Any, Any], sender: FromDockyard[ISender]
) -> Stream:
    await sender.send(GetOrder(order_id=OrderId(order_id)))  # an unknown order is a 404
    return sse_response(request, WatchOrder(order_id=OrderId(order_id)))


def create_app(database: Path | None = None, *, transport: Transport | None = None) -> Litestar:
    """The shop's Litestar app; the arguments are ``http_fastapi.create_app``'s."""
    shop, payments = build_web_apps(database or new_database(), transport or InMemoryTransport())

    @asynccontextmanager
    async def run_payments(_: Litestar) -> AsyncIterator[None]:
        async with running(payments):
            yield

    return Litestar(
        [page, place_order, get_order, order_status],
        lifespan=[run_payments],
        plugins=[DockyardPlugin(shop, problems=problems(), background_services=True)],
    )
