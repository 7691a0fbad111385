"""The composition roots: the shop (orders, inventory) and payments run as two apps.

They share nothing but integration events. Orders routes ``OrderPlaced`` to the ``payments``
destination and payments routes ``PaymentCaptured`` back to ``orders``, each through its
outbox: a message is written in the transaction that caused it and published by the worker's
relay after the commit. Here both apps live in one process and share an in-memory transport;
``examples/shop_distributed`` runs them as separate processes over RabbitMQ or NATS.

Checkout as a saga runs in two more apps on the same transport: the checkout app (inventory and
the saga) and the shipping service its remote step sends ``ShipOrder`` to.
"""

from __future__ import annotations

from pathlib import Path

from dockyard import App, DynamicModule, module
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import MessagingSettings
from dockyard.outbox import OutboxModule, route
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport import Transport
from examples.shop.components.checkout.application.saga import SHIPPING
from examples.shop.components.checkout.module import checkout_module
from examples.shop.components.inventory.module import InventoryModule
from examples.shop.components.orders.module import OrdersModule
from examples.shop.components.payments.module import PaymentsModule
from examples.shop.components.shipping.module import CHECKOUT_REPLIES, ShippingModule
from examples.shop.infra.module import InfraModule
from examples.shop.infra.settings import ShopSettings
from examples.shop.shared_kernel.events import OrderPlaced, PaymentCaptured
from examples.shop.ui.narrate import NarrateCommands

ORDERS = "orders"
PAYMENTS = "payments"


def shop_module(database: Path, transport: Transport) -> type:
    """The shop's root: events and outbox rows in one SQLite file (WAL) at ``database``."""
    url = f"sqlite+aiosqlite:///{database}"
    infra: DynamicModule = InfraModule.register(ShopSettings(database_url=url))

    @module(
        imports=[
            infra,
            SqlModule.register(url, create_tables=True),
            OutboxModule.register(
                transport=transport,
                backend=SqlOutboxBackend(),  # outbox rows commit with the order's events
                routes=[route(OrderPlaced).to(PAYMENTS, partition_key=lambda e: e.order_id)],
                imports=[SqlModule],
            ),
            ConsumerModule.register(endpoints=[listen(ORDERS, group="shop")]),
            InventoryModule,
            OrdersModule,
        ]
    )
    class ShopModule: ...

    return ShopModule


def payments_module(transport: Transport) -> type:
    """The payments app's root: it hears of orders only through its ``payments`` queue."""

    @module(
        imports=[
            InfraModule.register(ShopSettings(database_url="memory://")),
            OutboxModule.register(
                transport=transport,
                backend=InMemoryOutboxBackend(),
                routes=[route(PaymentCaptured).to(ORDERS, partition_key=lambda e: e.order_id)],
            ),
            ConsumerModule.register(endpoints=[listen(PAYMENTS, group="payments")]),
            PaymentsModule,
        ]
    )
    class PaymentsApp: ...

    return PaymentsApp


def build_shop_app(database: Path, transport: Transport) -> App:
    return App.build(
        shop_module(database, transport),
        messaging=MessagingSettings(behaviors=[NarrateCommands()]),
    )


def build_payments_app(transport: Transport) -> App:
    return App.build(payments_module(transport))


def checkout_app_module(database: Path, transport: Transport) -> type:
    """The checkout app's root: its saga instances and outbox rows in one SQLite file; it
    sends ``ShipOrder`` to ``shipping`` and hears back on ``checkout-replies``."""
    url = f"sqlite+aiosqlite:///{database}"

    @module(
        imports=[
            InfraModule.register(ShopSettings(database_url=url)),
            SqlModule.register(url, create_tables=True),
            OutboxModule.register(
                transport=transport, backend=SqlOutboxBackend(), imports=[SqlModule]
            ),
            ConsumerModule.register(endpoints=[listen(CHECKOUT_REPLIES, group="checkout")]),
            checkout_module(),
        ]
    )
    class CheckoutApp: ...

    return CheckoutApp


def shipping_app_module(transport: Transport) -> type:
    """The shipping service's root: it hears of orders only through its ``shipping`` queue."""

    @module(
        imports=[
            OutboxModule.register(transport=transport, backend=InMemoryOutboxBackend()),
            ConsumerModule.register(endpoints=[listen(SHIPPING, group="shipping")]),
            ShippingModule,
        ]
    )
    class ShippingApp: ...

    return ShippingApp


def build_checkout_app(database: Path, transport: Transport) -> App:
    return App.build(checkout_app_module(database, transport))


def build_shipping_app(transport: Transport) -> App:
    return App.build(shipping_app_module(transport))
