"""The shop's HTTP API (``examples/shop/http_*.py``) on FastAPI and on Litestar.

Each framework's app runs in a uvicorn process of its own, as ``make serve`` runs it; httpx
places, reads and watches orders. A last test serves the app in the test's loop, holding
back what the shop sends to payments, to show that the status stream is live: it was open
before the order was paid, and it tells of the payment when it happens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from examples.shop.components.orders.domain.order import PRICES_CENTS
from examples.shop.shared_kernel.ids import Sku
from examples.shop.ui.web import ItemSku

from integration.web._server import TIMEOUT, ServerProcess, server_process, serving
from integration.web._shop import FRAMEWORKS, HoldPayments, new_order, shop_app


@pytest.fixture(scope="module", params=FRAMEWORKS)
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server process per framework, for every test of this module."""
    log = tmp_path_factory.mktemp(request.param) / "server.log"
    with server_process(f"examples.shop.http_{request.param}:create_app", log) as server:
        yield server
    output = server.output()  # the lifespan started the shop once and stopped it once
    assert output.count("module OrdersModule started") == 1, output
    assert output.count("module OrdersModule stopped") == 1, output
    assert output.count("module PaymentsModule stopped") == 1, output


@pytest.fixture
async def client(shop: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=shop.url, timeout=TIMEOUT) as client:
        yield client


async def events_of(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """``(id, data)`` of each event of an SSE response."""
    event_id, data = "", ""
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            event_id = line.removeprefix("id: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif not line and data:
            yield event_id, json.loads(data)
            event_id, data = "", ""


async def test_an_order_placed_over_http_is_paid_and_its_stream_tells_so(
    client: httpx.AsyncClient,
) -> None:
    placed = await client.post("/orders", json=new_order("mug", 2))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    assert order_id.startswith("order-")

    view = (await client.get(f"/orders/{order_id}")).json()
    assert view["order_id"] == order_id
    assert view["total_cents"] == 2 * PRICES_CENTS[Sku("mug")]
    assert view["status"] in {"placed", "paid"}  # payments may have been quick

    async with client.stream("GET", f"/orders/{order_id}/status") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [event async for event in events_of(response)]  # ends once paid
    assert [(i, e["status"], e["version"]) for i, e in events] == [
        ("1", "placed", 1),
        ("2", "paid", 2),
    ]
    assert {e["order_id"] for _, e in events} == {order_id}

    paid = (await client.get(f"/orders/{order_id}")).json()
    assert (paid["status"], paid["version"]) == ("paid", 2)
    assert paid["payment_reference"].startswith("pay-")


async def test_refusals_and_unknown_orders_are_problem_details(client: httpx.AsyncClient) -> None:
    refused = await client.post("/orders", json=new_order("teapot", 3))  # 2 in stock
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json() == {
        "type": "about:blank",
        "title": "Out of stock",
        "status": 409,
        "detail": "only 2 of teapot left, 3 wanted",
        "instance": "/orders",
    }
    empty = await client.post("/orders", json={"customer_id": "c-ada", "lines": []})
    assert (empty.status_code, empty.json()["title"]) == (422, "Empty order")
    unknown_item = await client.post("/orders", json=new_order("boat", 1))
    assert unknown_item.status_code == 422
    assert unknown_item.json()["errors"]
    for path in ("/orders/order-9999", "/orders/order-9999/status"):
        missing = await client.get(path)
        assert missing.status_code == 404
        assert missing.json()["detail"] == "No Order with id order-9999."


async def test_the_page_watches_its_order_with_event_source(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'new EventSource("/orders/" + encodeURIComponent(orderId) + "/status")' in page.text


def test_what_the_api_accepts_is_what_the_shop_sells() -> None:
    assert set(get_args(ItemSku)) == set(PRICES_CENTS)


# -- live: the stream is open before the payment ----------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_the_stream_tells_of_the_payment_when_it_happens(
    framework: str, tmp_path: Path
) -> None:
    transport = HoldPayments()
    web = shop_app(framework, tmp_path / "shop.sqlite", transport)
    async with serving(web) as url, httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
        try:
            order_id = (await client.post("/orders", json=new_order())).json()["order_id"]
            async with client.stream("GET", f"/orders/{order_id}/status") as response:
                events = aiter(events_of(response))
                first = await asyncio.wait_for(anext(events), TIMEOUT)
                assert (first[0], first[1]["status"]) == ("1", "placed")
                still = (await client.get(f"/orders/{order_id}")).json()
                assert still["status"] == "placed"  # payments has not heard of it yet

                transport.release.set()  # the relay's publish goes through: payments charges
                second = await asyncio.wait_for(anext(events), TIMEOUT)
                assert (second[0], second[1]["status"], second[1]["version"]) == ("2", "paid", 2)
                with pytest.raises(StopAsyncIteration):  # paid: the stream ends
                    await asyncio.wait_for(anext(events), TIMEOUT)
        finally:
            transport.release.set()  # or payments' consumer would never stop
