"""Two apps, each with its own PostgreSQL schema, talking only through the outbox and a broker.

* orders: ``PlaceOrder`` writes the order and publishes ``OrderPlaced``, routed to
  ``{namespace}.orders``; it consumes ``{namespace}.payments`` and marks the order paid.
* payments: consumes ``{namespace}.orders``, records the charge and publishes
  ``PaymentCaptured``, routed to ``{namespace}.payments``.

Run as a process: ``python -m integration._apps.shop_apps orders|payments rabbit|nats|redis <schema>
<namespace> [<orders to place>]``; it runs its worker until SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from sqlalchemy import text

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Command, CommandHandler, Event, EventHandler, IPublisher
from dockyard.modules import module
from dockyard.outbox import OutboxModule, RelaySettings, route
from dockyard.retry import RetryPolicy
from dockyard.sql import SqlModule, SqlOutboxBackend, SqlUnitOfWork
from dockyard.transport import Transport
from integration._apps.services import (
    KAFKA_SERVERS,
    NATS_URL,
    POSTGRES_URL,
    REDIS_URL,
    engine_options,
    rabbit_url,
)

ORDERS_TABLE = (
    "CREATE TABLE shop_orders (order_id TEXT PRIMARY KEY, amount_cents INTEGER NOT NULL, "
    "status TEXT NOT NULL, payment_reference TEXT)"
)
PAYMENTS_TABLE = (
    "CREATE TABLE shop_payments (order_id TEXT NOT NULL, amount_cents INTEGER NOT NULL, "
    "reference TEXT NOT NULL)"
)
# Short retries: the first publishes may race the other app's start.
RELAY = RelaySettings(retry=RetryPolicy(max_attempts=50, initial_delay=0.05, max_delay=0.5))


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[None]):
    order_id: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    order_id: str
    amount_cents: int


@dataclass(frozen=True, slots=True)
class PaymentCaptured(Event):
    order_id: str
    reference: str


class PlaceOrderHandler(CommandHandler[PlaceOrder, None]):
    def __init__(self, uow: SqlUnitOfWork, events: IPublisher) -> None:
        self._uow = uow
        self._events = events

    async def handle(self, command: PlaceOrder, /) -> None:
        await self._uow.connection.execute(
            text("INSERT INTO shop_orders VALUES (:order_id, :amount, 'placed', NULL)"),
            {"order_id": command.order_id, "amount": command.amount_cents},
        )
        await self._events.publish(OrderPlaced(command.order_id, command.amount_cents))


class MarkOrderPaid(EventHandler[PaymentCaptured]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def handle(self, event: PaymentCaptured, /) -> None:
        await self._uow.connection.execute(
            text(
                "UPDATE shop_orders SET status = 'paid', payment_reference = :reference "
                "WHERE order_id = :order_id AND status = 'placed'"
            ),
            {"order_id": event.order_id, "reference": event.reference},
        )


class ChargeCustomer(EventHandler[OrderPlaced]):
    def __init__(self, uow: SqlUnitOfWork, events: IPublisher) -> None:
        self._uow = uow
        self._events = events

    async def handle(self, event: OrderPlaced, /) -> None:
        reference = f"pay-{event.order_id}"
        await self._uow.connection.execute(
            text("INSERT INTO shop_payments VALUES (:order_id, :amount, :reference)"),
            {"order_id": event.order_id, "amount": event.amount_cents, "reference": reference},
        )
        await self._events.publish(PaymentCaptured(event.order_id, reference))


def orders_app(schema: str, transport: Transport, namespace: str) -> App:
    @module(
        handlers=[PlaceOrderHandler, MarkOrderPaid],
        imports=[
            SqlModule.register(POSTGRES_URL, **engine_options(schema)),
            OutboxModule.register(
                transport=transport,
                backend=SqlOutboxBackend(),
                routes=[
                    route(OrderPlaced).to(f"{namespace}.orders", partition_key=lambda e: e.order_id)
                ],
                relay=RELAY,
            ),
            ConsumerModule.register(endpoints=[listen(f"{namespace}.payments", group="orders")]),
        ],
    )
    class Orders: ...

    return App.build(Orders)


def payments_app(schema: str, transport: Transport, namespace: str) -> App:
    @module(
        handlers=[ChargeCustomer],
        imports=[
            SqlModule.register(POSTGRES_URL, **engine_options(schema)),
            OutboxModule.register(
                transport=transport,
                backend=SqlOutboxBackend(),
                routes=[
                    route(PaymentCaptured).to(
                        f"{namespace}.payments", partition_key=lambda e: e.order_id
                    )
                ],
                relay=RELAY,
            ),
            ConsumerModule.register(endpoints=[listen(f"{namespace}.orders", group="payments")]),
        ],
    )
    class Payments: ...

    return App.build(Payments)


def transport_for(broker: str, name: str) -> Transport:
    if broker == "rabbit":
        from dockyard.transport.rabbit import RabbitTransport

        return RabbitTransport(rabbit_url(name))
    if broker == "redis":
        from dockyard.transport.redis import RedisTransport

        return RedisTransport(REDIS_URL)
    if broker == "kafka":
        from dockyard.transport.kafka import KafkaTransport

        return KafkaTransport(KAFKA_SERVERS, idempotent=False)  # Tansu: no idempotent producers
    from dockyard.transport.nats import NatsTransport

    return NatsTransport(NATS_URL)


async def main(role: str, broker: str, schema: str, namespace: str, orders: str = "0") -> None:
    transport = transport_for(broker, f"{namespace}-{role}")
    build = orders_app if role == "orders" else payments_app
    try:
        async with build(schema, transport, namespace) as app:
            for n in range(int(orders)):
                await app.send(PlaceOrder(f"o-{n:03d}", 1_000 + n))
            await app.run_worker(grace=5.0)
    finally:
        await transport.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
