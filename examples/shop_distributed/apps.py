"""The two composition roots: orders (with inventory) and payments, each its own app.

Each app owns a SQLite database (events, outbox, inbox) and knows the other only by the
destinations it routes to and listens on: orders routes ``OrderPlaced`` to
``{namespace}.payments`` and listens on ``{namespace}.orders``; payments the other way round.
"""

from __future__ import annotations

import os
from pathlib import Path

from dockyard import App, module
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import MessagingSettings
from dockyard.outbox import OutboxModule, route
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport import Transport
from examples.shop.components.inventory.module import InventoryModule
from examples.shop.components.orders.module import OrdersModule
from examples.shop.components.payments.module import PaymentsModule
from examples.shop.infra.module import InfraModule
from examples.shop.infra.settings import ShopSettings
from examples.shop.shared_kernel.events import OrderPlaced, PaymentCaptured
from examples.shop.ui.narrate import NarrateCommands

BROKERS = ("rabbit", "nats", "memory")
RABBIT_URL = os.environ.get("DOCKYARD_RABBIT_URL", "amqp://guest:guest@localhost:5672/")
NATS_URL = os.environ.get("DOCKYARD_NATS_URL", "nats://localhost:4222")


def inbox_of(namespace: str, app: str) -> str:
    """The destination ``app`` listens on: ``"shop.orders"``, ``"shop.payments"``."""
    return f"{namespace}.{app}"


def orders_app(folder: Path, transport: Transport, namespace: str) -> App:
    url = f"sqlite+aiosqlite:///{folder / 'orders.sqlite'}"

    @module(
        imports=[
            InfraModule.register(ShopSettings(database_url=url)),
            SqlModule.register(url, create_tables=True),
            OutboxModule.register(
                transport=transport,
                backend=SqlOutboxBackend(),  # rows commit with the order's events
                routes=[
                    route(OrderPlaced).to(
                        inbox_of(namespace, "payments"), partition_key=lambda e: e.order_id
                    )
                ],
                imports=[SqlModule],
            ),
            ConsumerModule.register(
                endpoints=[listen(inbox_of(namespace, "orders"), group="orders")]
            ),
            InventoryModule,
            OrdersModule,
        ]
    )
    class OrdersApp: ...

    return App.build(OrdersApp, messaging=MessagingSettings(behaviors=[NarrateCommands()]))


def payments_app(folder: Path, transport: Transport, namespace: str) -> App:
    url = f"sqlite+aiosqlite:///{folder / 'payments.sqlite'}"

    @module(
        imports=[
            InfraModule.register(ShopSettings(database_url=url)),
            SqlModule.register(url, create_tables=True),
            OutboxModule.register(
                transport=transport,
                backend=SqlOutboxBackend(),  # PaymentCaptured commits with the inbox record
                routes=[
                    route(PaymentCaptured).to(
                        inbox_of(namespace, "orders"), partition_key=lambda e: e.order_id
                    )
                ],
                imports=[SqlModule],
            ),
            ConsumerModule.register(
                endpoints=[listen(inbox_of(namespace, "payments"), group="payments")]
            ),
            PaymentsModule,
        ]
    )
    class PaymentsApp: ...

    return App.build(PaymentsApp)


def transport_for(broker: str, app: str) -> Transport:
    """A new transport (its own connection) for ``app``, on ``broker``."""
    if broker == "rabbit":
        from dockyard.transport.rabbit import RabbitTransport

        separator = "&" if "?" in RABBIT_URL else "?"
        return RabbitTransport(f"{RABBIT_URL}{separator}name=shop-{app}")
    if broker == "nats":
        from dockyard.transport.nats import NatsTransport

        return NatsTransport(NATS_URL)
    msg = f"unknown broker {broker!r}: choose one of {', '.join(BROKERS)}"
    raise ValueError(msg)


async def declare_groups(transport: Transport, namespace: str) -> None:
    """Create both apps' consumer groups, so nothing published before an app listens is lost."""
    await transport.declare(inbox_of(namespace, "payments"), "payments")
    await transport.declare(inbox_of(namespace, "orders"), "orders")
