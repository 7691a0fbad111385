"""Two event classes of one name, ``OrderPlaced``, neither with ``@event_type``.

Fine in one process; a clash once a consumer or the outbox serializes them by that name
(``dockyard.consumer._module.type_name_conflicts``). ``consumer_app`` is such an app, for
``dockyard check clashing_events:consumer_app``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard import App, Event, module
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import EventHandler
from dockyard.outbox import OutboxModule
from dockyard.transport.memory import InMemoryTransport


class Orders:
    @dataclass(frozen=True)
    class OrderPlaced(Event):
        order_id: str


class Billing:
    @dataclass(frozen=True)
    class OrderPlaced(Event):
        invoice_id: str


class Ship(EventHandler[Orders.OrderPlaced]):
    async def handle(self, event: Orders.OrderPlaced, /) -> None:
        del event


class Invoice(EventHandler[Billing.OrderPlaced]):
    async def handle(self, event: Billing.OrderPlaced, /) -> None:
        del event


def consumer_app() -> App:
    """Both handled in an app whose consumers receive from ``orders``."""

    @module(
        imports=[
            OutboxModule.register(transport=InMemoryTransport()),
            ConsumerModule.register(endpoints=[listen("orders", group="shop")]),
        ],
        handlers=[Ship, Invoice],
    )
    class Root: ...

    return App.build(Root)
