"""Two apps in two processes, each with its outbox and inbox on PostgreSQL, over a real broker
(RabbitMQ, NATS JetStream, Redis Streams).

orders places orders (``OrderPlaced`` → the outbox → the broker); payments charges them and
answers ``PaymentCaptured`` the same way; orders marks them paid. The test only starts the
processes and reads both databases at the end.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from dockyard.transport.nats import NatsTransport
from integration._apps.services import (
    POSTGRES_DSN,
    PYTHON,
    ROOT,
    create_schema,
    delete_nats_streams,
    delete_rabbit_destinations,
    delete_redis_keys,
    drop_schema,
    python_env,
    unique,
)
from integration._apps.shop_apps import ORDERS_TABLE, PAYMENTS_TABLE, transport_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ORDERS = 25


@pytest_asyncio.fixture
async def schemas() -> AsyncIterator[tuple[str, str]]:
    run = unique("dockyard_shop").replace("-", "_")
    orders, payments = f"{run}_orders", f"{run}_payments"
    await create_schema(orders, ORDERS_TABLE)
    await create_schema(payments, PAYMENTS_TABLE)
    try:
        yield orders, payments
    finally:
        await drop_schema(orders)
        await drop_schema(payments)


def start(
    role: str, broker: str, schema: str, namespace: str, *extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "integration._apps.shop_apps", role, broker, schema, namespace, *extra],
        cwd=ROOT,
        env=python_env(),
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM (the worker finishes in-flight work), then what the process wrote to stderr."""
    process.terminate()
    try:
        _, errors = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        _, errors = process.communicate()
    return errors


async def provision(broker: str, namespace: str) -> None:
    """Declare both consumer groups first, as a deployment would: nothing sent is missed."""
    transport = transport_for(broker, f"{namespace}-provision")
    try:
        await transport.declare(f"{namespace}.orders", "payments")
        await transport.declare(f"{namespace}.payments", "orders")
    finally:
        await transport.close()


async def clean_up(broker: str, namespace: str) -> None:
    if broker == "rabbit":
        await delete_rabbit_destinations(
            (f"{namespace}.orders", f"{namespace}.orders.payments"),
            (f"{namespace}.payments", f"{namespace}.payments.orders"),
        )
    elif broker == "redis":
        await delete_redis_keys(f"{namespace}.orders", f"{namespace}.payments")
    else:
        await delete_nats_streams(
            NatsTransport.stream_name(f"{namespace}.orders"),
            NatsTransport.stream_name(f"{namespace}.payments"),
        )


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("rabbit", marks=pytest.mark.rabbit),
        pytest.param("nats", marks=pytest.mark.nats),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ],
)
async def test_orders_and_payments_exchange_events_through_the_broker(
    broker: str, schemas: tuple[str, str]
) -> None:
    orders_schema, payments_schema = schemas
    namespace = unique("shop")
    await provision(broker, namespace)
    payments = start("payments", broker, payments_schema, namespace)
    orders = start("orders", broker, orders_schema, namespace, str(ORDERS))
    errors: dict[str, str] = {}
    orders_db = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": orders_schema})
    payments_db = await asyncpg.connect(
        POSTGRES_DSN, server_settings={"search_path": payments_schema}
    )
    try:
        started = time.monotonic()
        while time.monotonic() - started < 20:
            paid = await orders_db.fetchval(
                "SELECT count(*) FROM shop_orders WHERE status = 'paid'"
            )
            if paid == ORDERS or orders.poll() is not None or payments.poll() is not None:
                break
            await asyncio.sleep(0.1)
        order_rows = await orders_db.fetch("SELECT * FROM shop_orders ORDER BY order_id")
        payment_rows = await payments_db.fetch("SELECT * FROM shop_payments ORDER BY order_id")
        errors = {"orders": stop(orders), "payments": stop(payments)}
        outboxes = {
            "orders": await orders_db.fetch(
                "SELECT status, count(*) FROM dockyard_outbox GROUP BY 1"
            ),
            "payments": await payments_db.fetch(
                "SELECT status, count(*) FROM dockyard_outbox GROUP BY 1"
            ),
        }
        inboxes = {
            "orders": await orders_db.fetchval("SELECT count(*) FROM dockyard_inbox"),
            "payments": await payments_db.fetchval("SELECT count(*) FROM dockyard_inbox"),
        }
    finally:
        for process in (orders, payments):
            if process.poll() is None:
                stop(process)
        await orders_db.close()
        await payments_db.close()
        await clean_up(broker, namespace)
    expected = [f"o-{n:03d}" for n in range(ORDERS)]
    assert [r["order_id"] for r in order_rows] == expected, errors
    assert {r["status"] for r in order_rows} == {"paid"}, errors
    # Charged once each, and orders knows the reference payments made.
    assert [r["order_id"] for r in payment_rows] == expected
    assert [r["payment_reference"] for r in order_rows] == [r["reference"] for r in payment_rows]
    assert [r["amount_cents"] for r in payment_rows] == [r["amount_cents"] for r in order_rows]
    # Every message left through the outbox and arrived through the inbox.
    assert {tuple(row) for row in outboxes["orders"]} == {("delivered", ORDERS)}
    assert {tuple(row) for row in outboxes["payments"]} == {("delivered", ORDERS)}
    assert inboxes == {"orders": ORDERS, "payments": ORDERS}
