"""A shop whose checkout saga ships through a remote step, and the shipping service it asks,
each with its own PostgreSQL schema, talking only through their outboxes and a broker.

* shop: starts ``checkout`` sagas: ``reserve`` (a row in ``shop_reservations``, deleted by its
  compensation), ``ship`` (remote: ``ShipOrder`` to ``{namespace}.shipping``, replies on
  ``{namespace}.replies``), ``confirm`` (marks the reservation shipped).
* shipping: records each shipment once per idempotency key in ``shipments`` and answers
  ``Shipped``; it refuses the orders whose number divides by 5 (``ShipmentRefused``).

Run as a process: ``python -m integration._apps.remote_saga_apps shop|shipping <schema>
<namespace> [<sagas to start>]``; it runs its worker until SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from sqlalchemy import text

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Command, CommandHandler, Event, MessageContext
from dockyard.modules import module
from dockyard.outbox import Outbox, OutboxModule, RelaySettings
from dockyard.retry import RetryPolicy
from dockyard.sagas import (
    RemoteStep,
    Saga,
    Sagas,
    SagaSettings,
    SagasModule,
    SagaStep,
    remote,
    step,
)
from dockyard.sql import SqlModule, SqlOutboxBackend, SqlUnitOfWork
from dockyard.transport.rabbit import RabbitTransport
from integration._apps.services import POSTGRES_URL, engine_options, rabbit_url

SHOP_TABLE = (
    "CREATE TABLE shop_reservations (order_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
    "tracking TEXT)"
)
SHIPPING_TABLE = (
    "CREATE TABLE shipments (idempotency_key TEXT PRIMARY KEY, order_id TEXT NOT NULL, "
    "sends INTEGER NOT NULL)"
)
RELAY = RelaySettings(retry=RetryPolicy(max_attempts=50, initial_delay=0.05, max_delay=0.5))


@dataclass
class Checkout:
    order_id: str
    tracking: str | None = None


@dataclass(frozen=True, slots=True)
class ShipOrder(Command[None]):
    order_id: str


@dataclass(frozen=True, slots=True)
class Shipped(Event):
    order_id: str
    tracking: str


@dataclass(frozen=True, slots=True)
class ShipmentRefused(Event):
    order_id: str
    reason: str


class Reserve(SagaStep[Checkout]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def act(self, state: Checkout) -> None:
        await self._uow.connection.execute(
            text("INSERT INTO shop_reservations VALUES (:order_id, 'reserved', NULL)"),
            {"order_id": state.order_id},
        )

    async def compensate(self, state: Checkout) -> None:
        await self._uow.connection.execute(
            text("DELETE FROM shop_reservations WHERE order_id = :order_id"),
            {"order_id": state.order_id},
        )


class RequestShipment(RemoteStep[Checkout]):
    async def command(self, state: Checkout) -> object:
        return ShipOrder(state.order_id)

    async def on_reply(self, state: Checkout, reply: Shipped) -> None:
        state.tracking = reply.tracking


class Confirm(SagaStep[Checkout]):
    def __init__(self, uow: SqlUnitOfWork) -> None:
        self._uow = uow

    async def act(self, state: Checkout) -> None:
        await self._uow.connection.execute(
            text(
                "UPDATE shop_reservations SET status = 'shipped', tracking = :tracking "
                "WHERE order_id = :order_id"
            ),
            {"order_id": state.order_id, "tracking": state.tracking},
        )


def checkout(namespace: str) -> Saga[Checkout]:
    return Saga(
        "checkout",
        version=1,
        state=Checkout,
        steps=[
            step("reserve", Reserve),
            remote(
                "ship",
                RequestShipment,
                destination=f"{namespace}.shipping",
                replies=[Shipped],
                failures=[ShipmentRefused],
                timeout=60,
            ),
            step("confirm", Confirm),
        ],
        retry=RetryPolicy(max_attempts=2, initial_delay=0.05, jitter=False),
    )


class ShipOrderHandler(CommandHandler[ShipOrder, None]):
    """Ships once per idempotency key; answers on the shop's reply destination (the reply
    carries the command's saga headers: it inherits them)."""

    replies = ""

    def __init__(self, uow: SqlUnitOfWork, outbox: Outbox, context: MessageContext) -> None:
        self._uow = uow
        self._outbox = outbox
        self._context = context

    async def handle(self, command: ShipOrder, /) -> None:
        if int(command.order_id.removeprefix("o-")) % 5 == 0:
            refused = ShipmentRefused(command.order_id, "no carrier")
            await self._outbox.add(refused, destination=self.replies)
            return
        await self._uow.connection.execute(
            text(
                "INSERT INTO shipments VALUES (:key, :order_id, 1) ON CONFLICT (idempotency_key) "
                "DO UPDATE SET sends = shipments.sends + 1"
            ),
            {"key": self._context.headers["idempotency-key"], "order_id": command.order_id},
        )
        shipped = Shipped(command.order_id, f"track-{command.order_id}")
        await self._outbox.add(shipped, destination=self.replies)


def shop_app(schema: str, namespace: str, transport: RabbitTransport) -> App:
    sql = SqlModule.register(POSTGRES_URL, **engine_options(schema))

    @module(
        imports=[
            sql,
            OutboxModule.register(transport=transport, backend=SqlOutboxBackend(), relay=RELAY),
            ConsumerModule.register(endpoints=[listen(f"{namespace}.replies", group="shop")]),
            SagasModule.register(
                sagas=[checkout(namespace)],
                imports=[sql],
                settings=SagaSettings(max_poll_interval=0.1),
            ),
        ],
    )
    class Shop: ...

    return App.build(Shop)


def shipping_app(schema: str, namespace: str, transport: RabbitTransport) -> App:
    ShipOrderHandler.replies = f"{namespace}.replies"

    @module(
        handlers=[ShipOrderHandler],
        imports=[
            SqlModule.register(POSTGRES_URL, **engine_options(schema)),
            OutboxModule.register(transport=transport, backend=SqlOutboxBackend(), relay=RELAY),
            ConsumerModule.register(endpoints=[listen(f"{namespace}.shipping", group="shipping")]),
        ],
    )
    class ShippingService: ...

    return App.build(ShippingService)


async def main(role: str, schema: str, namespace: str, sagas: str = "0") -> None:
    transport = RabbitTransport(rabbit_url(f"{namespace}-{role}"))
    build = shop_app if role == "shop" else shipping_app
    try:
        async with build(schema, namespace, transport) as app:
            saga = checkout(namespace)
            for n in range(int(sagas)):
                async with app.scope() as scope:
                    order_id = f"o-{n:03d}"
                    await (await scope.get(Sagas)).start(saga, Checkout(order_id), saga_id=order_id)
            await app.run_worker(grace=5.0)
    finally:
        await transport.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
