"""Remote saga steps end to end: two apps in two processes, each on its own PostgreSQL schema,
over RabbitMQ. The shop's checkout saga sends ``ShipOrder`` through its outbox and resumes on
the shipping service's reply through its consumer and inbox; refused orders are retried once
and compensated. The test starts the processes and reads both databases."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from dockyard.transport.rabbit import RabbitTransport
from integration._apps.remote_saga_apps import SHIPPING_TABLE, SHOP_TABLE
from integration._apps.services import (
    POSTGRES_DSN,
    PYTHON,
    ROOT,
    create_schema,
    delete_rabbit_destinations,
    drop_schema,
    python_env,
    rabbit_url,
    unique,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.slow]

SAGAS = 20
REFUSED = {f"o-{n:03d}" for n in range(SAGAS) if n % 5 == 0}


@pytest_asyncio.fixture
async def schemas() -> AsyncIterator[tuple[str, str]]:
    run = unique("dockyard_remote").replace("-", "_")
    shop, shipping = f"{run}_shop", f"{run}_shipping"
    await create_schema(shop, SHOP_TABLE)
    await create_schema(shipping, SHIPPING_TABLE)
    try:
        yield shop, shipping
    finally:
        await drop_schema(shop)
        await drop_schema(shipping)


def start(role: str, schema: str, namespace: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "integration._apps.remote_saga_apps", role, schema, namespace, *extra],
        cwd=ROOT,
        env=python_env(),
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    try:
        _, errors = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        _, errors = process.communicate()
    return errors


async def test_a_remote_step_runs_over_rabbitmq_between_two_apps(
    schemas: tuple[str, str],
) -> None:
    shop_schema, shipping_schema = schemas
    namespace = unique("remote")
    transport = RabbitTransport(rabbit_url(f"{namespace}-provision"))
    try:  # both groups first, as a deployment would: nothing sent is missed
        await transport.declare(f"{namespace}.shipping", "shipping")
        await transport.declare(f"{namespace}.replies", "shop")
    finally:
        await transport.close()
    shipping = start("shipping", shipping_schema, namespace)
    shop = start("shop", shop_schema, namespace, str(SAGAS))
    shop_db = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": shop_schema})
    shipping_db = await asyncpg.connect(
        POSTGRES_DSN, server_settings={"search_path": shipping_schema}
    )
    errors: dict[str, str] = {}
    try:
        started = time.monotonic()
        while time.monotonic() - started < 60:
            finished = await shop_db.fetchval(
                "SELECT count(*) FROM dockyard_sagas WHERE status IN ('completed', 'compensated')"
            )
            if finished == SAGAS or shop.poll() is not None or shipping.poll() is not None:
                break
            await asyncio.sleep(0.1)
        sagas = await shop_db.fetch(
            "SELECT saga_id, status, step_log FROM dockyard_sagas ORDER BY saga_id"
        )
        reservations = await shop_db.fetch("SELECT * FROM shop_reservations ORDER BY order_id")
        shipments = await shipping_db.fetch("SELECT * FROM shipments ORDER BY order_id")
        errors = {"shop": stop(shop), "shipping": stop(shipping)}
        inboxes = {
            "shop": await shop_db.fetchval("SELECT count(*) FROM dockyard_inbox"),
            "shipping": await shipping_db.fetchval("SELECT count(*) FROM dockyard_inbox"),
        }
    finally:
        for process in (shop, shipping):
            if process.poll() is None:
                stop(process)
        await shop_db.close()
        await shipping_db.close()
        await delete_rabbit_destinations(
            (f"{namespace}.shipping", f"{namespace}.shipping.shipping"),
            (f"{namespace}.replies", f"{namespace}.replies.shop"),
        )
    shipped = sorted(f"o-{n:03d}" for n in range(SAGAS) if f"o-{n:03d}" not in REFUSED)
    statuses = {r["saga_id"]: r["status"] for r in sagas}
    assert statuses == {
        saga_id: "compensated" if saga_id in REFUSED else "completed" for saga_id in statuses
    }, errors
    assert len(statuses) == SAGAS
    trails = {
        r["saga_id"]: [(e["step"], e["kind"]) for e in json.loads(r["step_log"])] for r in sagas
    }
    assert trails["o-001"] == [
        ("reserve", "completed"),
        ("ship", "sent"),
        ("ship", "completed"),
        ("confirm", "completed"),
    ]
    assert trails["o-005"] == [
        ("reserve", "completed"),
        ("ship", "sent"),
        ("ship", "failed"),
        ("ship", "sent"),
        ("ship", "failed"),
        ("reserve", "compensated"),
    ]
    # Shipped once per key, the reply applied: the tracking made it into the shop's row.
    assert [(r["order_id"], r["sends"]) for r in shipments] == [(o, 1) for o in shipped]
    assert [r["idempotency_key"] for r in shipments] == [f"checkout:{o}:ship" for o in shipped]
    assert [(r["order_id"], r["status"], r["tracking"]) for r in reservations] == [
        (o, "shipped", f"track-{o}") for o in shipped
    ]
    # Every command and reply went through an inbox: two sends per refused order.
    commands = len(shipped) + 2 * len(REFUSED)
    assert inboxes == {"shipping": commands, "shop": commands}
