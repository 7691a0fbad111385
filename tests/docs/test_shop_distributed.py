"""``python -m examples.shop_distributed``: orders and payments as two apps, joined by events.

``memory`` always runs (one process, in-memory transport). The broker modes run the real
thing, two processes over RabbitMQ or NATS, when the server answers (and must on CI).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from examples.shop.shared_kernel import ids
from examples.shop_distributed.run import run

from dockyard.transport.nats import NatsTransport
from integration._apps.services import delete_nats_streams, delete_rabbit_destinations
from services import require_service

ROOT = Path(__file__).resolve().parents[2]


def check_story(out: str) -> None:
    steps = [line.split(".")[0] for line in out.splitlines() if line.startswith("== ")]
    assert steps == [f"== {i}" for i in range(1, 6)], out
    placed = re.search(r"(order-\d{4}) committed: 50\.99 EUR", out)
    assert placed is not None, out
    order_id = placed.group(1)
    # Cause before effect, across the two apps: placed, charged, marked paid. (The apps run
    # concurrently: "committed" may be printed after the payment, but not before the command.)
    assert (
        out.index("-> PlaceOrder")
        < out.index("payments: charged 50.99 EUR")
        < out.index(f"orders: {order_id} marked paid (pay-0001)")
        < out.index(f"{order_id}: paid (pay-0001)")
    ), out
    # Each app sent one message through its outbox and handled one through its inbox.
    assert "[orders] outbox: 1 delivered; inbox: 1 handled" in out
    assert "[payments] stopped; outbox: 1 delivered; inbox: 1 handled" in out


async def test_memory_mode_runs_both_apps_in_one_process(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Order ids come from a process-wide counter; leave it as the shop demo's test expects.
    monkeypatch.setattr(ids, "_order_numbers", itertools.count(1))
    await run("memory", namespace="shop")
    out = capsys.readouterr().out
    check_story(out)
    assert "[orders] worker running: outbox-relay, consumer:shop.orders:orders" in out
    assert "[payments] worker running: outbox-relay, consumer:shop.payments:payments" in out


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["rabbit", "nats"])
async def test_broker_mode_runs_the_apps_in_two_processes(broker: str) -> None:
    require_service(broker)
    namespace = f"shop-test-{uuid.uuid4().hex[:8]}"
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "examples.shop_distributed", broker, "--namespace", namespace],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        orders, payments = f"{namespace}.orders", f"{namespace}.payments"
        if broker == "rabbit":
            await delete_rabbit_destinations(
                (orders, f"{orders}.orders"), (payments, f"{payments}.payments")
            )
        else:
            await delete_nats_streams(
                NatsTransport.stream_name(orders), NatsTransport.stream_name(payments)
            )
    assert done.returncode == 0, done.stderr
    check_story(done.stdout)
    assert f"Declare both consumer groups on {broker}" in done.stdout
