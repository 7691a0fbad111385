"""The app `docs/cli-operations.md` operates: an outbox, a catch-up projection, a saga and a
process manager on SQL.

Its outbox has two transports (in memory here, standing in for brokers): the first, and
`billing` (destinations `billing://...`), whose relay loop has settings of its own.

Its database is `$DOCKYARD_DATABASE_URL` (a SQLite file `operations.db` in the current
folder by default); `$DOCKYARD_DATABASE_SCHEMA` puts its tables in that PostgreSQL schema
(the tests give each run one of its own). `python -m docs.examples.cli_operations_app seed`
creates the tables and leaves the app in the state the page starts from: orders placed
(their events in the log, their messages in the outbox), three dead letters, a completed
saga and two parked on a failing step, two parcels on their way and one delivered.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dockyard import App, Event, module
from dockyard.eventsourcing import ANY, EventStore, RecordedEvent
from dockyard.outbox import (
    OutboxMessage,
    OutboxModule,
    OutboxStatus,
    OutboxStore,
    RelaySettings,
    route,
)
from dockyard.projections import Projection, ProjectionControl, ProjectionsModule, handles
from dockyard.retry import RetryPolicy
from dockyard.sagas import (
    Process,
    ProcessHandler,
    ProcessManager,
    ProcessManagersModule,
    Saga,
    SagaControl,
    Sagas,
    SagasModule,
    SagaStep,
    pivot,
    starts,
    step,
)
from dockyard.sagas import handles as continues  # `handles` is the projection's here
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.sql import Database, SqlModule, SqlOutboxBackend, SqlUnitOfWork
from dockyard.transport.memory import InMemoryTransport

URL = os.environ.get("DOCKYARD_DATABASE_URL", "sqlite:///operations.db")
SCHEMA = os.environ.get("DOCKYARD_DATABASE_SCHEMA")

read_models = sa.MetaData()
order_totals = sa.Table(
    "ops_order_totals",
    read_models,
    sa.Column("customer", sa.String(50), primary_key=True),
    sa.Column("orders", sa.Integer(), nullable=False),
    sa.Column("total", sa.Integer(), nullable=False),
)


@dataclass(frozen=True)
class OrderPlaced(Event):
    order_id: str
    customer: str
    total: int


class OrderTotals(Projection):
    """Orders and their total per customer, in `ops_order_totals`."""

    name = "order-totals"

    def __init__(self, uow: SqlUnitOfWork) -> None:
        self.uow = uow

    @handles
    async def placed(self, event: OrderPlaced, recorded: RecordedEvent) -> None:
        del recorded
        updated = await self.uow.connection.execute(
            sa.update(order_totals)
            .where(order_totals.c.customer == event.customer)
            .values(orders=order_totals.c.orders + 1, total=order_totals.c.total + event.total)
        )
        if updated.rowcount == 0:
            await self.uow.connection.execute(
                sa.insert(order_totals).values(customer=event.customer, orders=1, total=event.total)
            )

    async def reset(self) -> None:
        await self.uow.connection.execute(sa.delete(order_totals))


@dataclass
class Shipping:
    order_id: str


class Reserve(SagaStep[Shipping]):
    async def act(self, state: Shipping, /) -> None:
        del state


class Ship(SagaStep[Shipping]):
    async def act(self, state: Shipping, /) -> None:
        if state.order_id.startswith("o-9"):
            raise RuntimeError(f"the carrier refused order {state.order_id}")


shipping = Saga(
    "shipping",
    version=1,
    state=Shipping,
    steps=[pivot("reserve", Reserve), step("ship", Ship, retry=RetryPolicy(1, 0.01))],
)


@dataclass(frozen=True)
class ParcelBooked(Event):
    parcel: str


@dataclass(frozen=True)
class ParcelDelivered(Event):
    parcel: str


@dataclass
class Delivery:
    scans: list[str]


class OnBooked(ProcessHandler[ParcelBooked, Delivery]):
    async def handle(self, message: ParcelBooked, process: Process[Delivery]) -> None:
        process.state.scans.append("booked")


class OnDelivered(ProcessHandler[ParcelDelivered, Delivery]):
    async def handle(self, message: ParcelDelivered, process: Process[Delivery]) -> None:
        process.state.scans.append("delivered")
        process.complete()


delivery = ProcessManager(
    "delivery",
    version=1,
    state=Delivery,
    initial=lambda: Delivery([]),
    handlers=[
        starts(ParcelBooked, OnBooked, key="parcel"),
        continues(ParcelDelivered, OnDelivered, key="parcel"),
    ],
)


options: dict[str, Any] = {"poolclass": sa.NullPool}
if SCHEMA is not None:
    options["connect_args"] = {"server_settings": {"search_path": SCHEMA}}


@module(
    imports=[
        SqlModule.register(URL, serializer=Serializer(TypeRegistry([OrderPlaced])), **options),
        OutboxModule.register(
            transport=InMemoryTransport(),
            transports={"billing": InMemoryTransport()},
            relays={"billing": RelaySettings(batch_size=100, retry=RetryPolicy(max_attempts=5))},
            backend=SqlOutboxBackend(),
            routes=[route(OrderPlaced).to("orders")],
            imports=[SqlModule],
        ),
        ProjectionsModule.register(projections=[OrderTotals], imports=[SqlModule]),
        SagasModule.register(sagas=[shipping], imports=[SqlModule]),
        ProcessManagersModule.register(processes=[delivery]),
    ],
)
class Operations: ...


app = App.build(Operations)

T0 = 1_796_000_000.0  # 2026-11-30 00:53:20 UTC: the seeded messages' times, fixed for the page


def _dead(number: int, destination: str, type_name: str, error: str) -> OutboxMessage:
    return OutboxMessage(
        message_id=f"m-{number}",
        destination=destination,
        type_name=type_name,
        payload=f'{{"order_id":"o-{number}"}}'.encode(),
        headers={"correlation-id": f"c-{number}"},
        created_at=T0 + number * 60,
        next_attempt_at=T0 + number * 60,
        attempts=5,
        status=OutboxStatus.DEAD,
        last_error=error,
    )


async def seed() -> None:
    """Tables (dockyard's, the read model's), orders, dead letters, two parked sagas."""
    database = Database(URL, **options)
    await database.create_tables()  # dockyard's tables (`dockyard db create` does the same)
    async with database.engine.begin() as connection:  # the app's own: its read model
        await connection.run_sync(read_models.create_all)
    await database.dispose()
    async with app:
        orders = [(1, "ada", 30), (2, "bob", 12), (3, "ada", 5)]
        async with app.scope() as scope:  # one transaction, committed when the block ends
            store = await scope.get(EventStore)
            for number, customer, total in orders:
                event = OrderPlaced(f"o-{number}", customer, total)
                await store.append(f"Order-o-{number}", [event], ANY)
        await (await app.get(ProjectionControl)).catch_up("order-totals")
        async with app.scope() as scope:
            await (await scope.get(EventStore)).append(
                "Order-o-4", [OrderPlaced("o-4", "cy", 8)], ANY
            )
        await app.publish(OrderPlaced("o-4", "cy", 8))  # routed: a pending outbox message
        outbox = await app.get(OutboxStore)
        for letter in [
            _dead(1, "orders", "OrderPlaced", "TransportUnavailableError: broker refused"),
            _dead(
                2,
                "billing://invoices",
                "InvoiceDue",
                "consumer:billing://invoices:mail: KeyError: 'email'",
            ),
            _dead(3, "orders", "OrderPlaced", "TransportUnavailableError: broker refused"),
        ]:
            await outbox.add_dead_letter(letter)
        async with app.scope() as scope:
            sagas = await scope.get(Sagas)
            await sagas.start(shipping, Shipping("o-1"), saga_id="ship-o-1")
            await sagas.start(shipping, Shipping("o-9"), saga_id="ship-o-9")
            await sagas.start(shipping, Shipping("o-95"), saga_id="ship-o-95")
        await (await app.get(SagaControl)).run_due()
        parcels: list[Event] = [ParcelBooked("p-1"), ParcelBooked("p-2"), ParcelDelivered("p-2")]
        for parcel in [*parcels, ParcelBooked("p-3")]:
            await app.publish(parcel)  # each in a transaction of its own, with its instance


if __name__ == "__main__":
    if sys.argv[1:] != ["seed"]:
        sys.exit("usage: python -m docs.examples.cli_operations_app seed")
    asyncio.run(seed())
