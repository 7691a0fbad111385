"""The shop's order page in a real browser: headless Chromium follows an order over SSE.

The page's script opens an ``EventSource`` on the order's status stream and writes each status
it receives into the page. Payments is held back until the stream has sent its first event,
so the browser is shown ``placed``, and only then is the order paid: the ``paid`` the page
ends with reached it live, over the same connection. ``--dump-dom`` prints the page once
it is idle: the script closes the stream when the order is paid, and Chromium's virtual
time does not run out while a request (the stream) is open.
"""

from __future__ import annotations

import asyncio
import re
from asyncio import FIRST_COMPLETED
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration.web._server import TIMEOUT, serving
from integration.web._shop import FRAMEWORKS, HoldPayments, new_order, shop_app
from services import require_program

# Without the background-networking flags Chromium calls home, which this closed network
# refuses; --disable-quic keeps it on TCP.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def first_event_sent(asgi_app: Any, sent: asyncio.Event) -> Any:
    """``asgi_app``, setting ``sent`` once a status stream has sent its first bytes."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/status"):
            await asgi_app(scope, receive, send)
            return

        async def watched(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and message.get("body"):
                sent.set()

        await asgi_app(scope, receive, watched)

    return app


async def dump_dom(chromium: str, url: str, profile: Path) -> str:
    """The page at ``url`` as Chromium leaves it, once idle."""
    browser = await asyncio.create_subprocess_exec(
        chromium,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(browser.communicate(), TIMEOUT)
    except TimeoutError:
        raise AssertionError(f"Chromium did not finish with {url} in {TIMEOUT:.0f} s") from None
    finally:
        if browser.returncode is None:  # timed out, or the test gave up on it
            browser.kill()
            await browser.wait()
    assert browser.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode()


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_the_order_page_shows_the_status_live_over_event_source(
    framework: str, tmp_path: Path
) -> None:
    chromium = require_program("chromium", "apt-get install -y chromium")
    transport = HoldPayments()
    sent = asyncio.Event()
    web = first_event_sent(shop_app(framework, tmp_path / "shop.sqlite", transport), sent)
    async with serving(web) as url, httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
        order_id = (await client.post("/orders", json=new_order())).json()["order_id"]
        page = asyncio.ensure_future(
            dump_dom(chromium, f"{url}/?order={order_id}", tmp_path / "profile")
        )
        try:
            opened = asyncio.ensure_future(sent.wait())
            await asyncio.wait({page, opened}, timeout=TIMEOUT, return_when=FIRST_COMPLETED)
            opened.cancel()
            if page.done():
                page.result()  # raises what went wrong
            assert sent.is_set(), "the page never opened the order's status stream"
            status = (await client.get(f"/orders/{order_id}")).json()["status"]
            assert status == "placed"  # still: payments has heard nothing yet
            transport.release.set()
            dom = await page
        finally:
            transport.release.set()  # or payments' consumer would never stop
            if not page.done():
                page.cancel()
                await asyncio.gather(page, return_exceptions=True)

    section = re.search(r'<section id="order"[^>]*>.*?</section>', dom, re.DOTALL)
    assert section is not None, dom
    html = section.group(0)
    assert 'data-state="done"' in html, html  # the script saw "paid" and closed the stream
    assert 'data-connections="1"' in html, html  # one connection: no reconnect replayed it
    assert f'<h2 id="order-id">{order_id}</h2>' in html
    assert '<strong id="status">paid</strong>' in html
    history = re.findall(r'<li data-event-id="(\d+)">([^<]*)</li>', html)
    assert history == [("1", "placed (version 1)"), ("2", "paid (version 2)")]
