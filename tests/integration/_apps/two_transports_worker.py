"""An app with two transports: orders to RabbitMQ, page views to NATS, from one PostgreSQL
outbox; its worker runs one relay per transport (``outbox-relay``, ``outbox-relay:nats``).

Run by ``dockyard worker integration._apps.two_transports_worker:app``. The environment names
the schema (``DOCKYARD_TT_SCHEMA``), the RabbitMQ queue (``DOCKYARD_TT_ORDERS``) and the NATS
subject (``DOCKYARD_TT_PAGES``). The test builds the same app to write the outbox rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dockyard.app import App
from dockyard.messaging import Event
from dockyard.modules import module
from dockyard.outbox import OutboxModule, RelaySettings, route
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport
from integration._apps.services import NATS_URL, POSTGRES_URL, RABBIT_URL, engine_options


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    n: int


@dataclass(frozen=True, slots=True)
class PageViewed(Event):
    n: int


def build(schema: str, orders: str, pages: str) -> App:
    @module(
        imports=[
            SqlModule.register(POSTGRES_URL, pool_size=2, **engine_options(schema)),
            OutboxModule.register(
                transport=RabbitTransport(RABBIT_URL),
                transports={"nats": NatsTransport(NATS_URL)},
                backend=SqlOutboxBackend(),
                relay=RelaySettings(outage_pause=0.05, max_outage_pause=0.5),
                routes=[route(OrderPlaced).to(orders), route(PageViewed).to(f"nats://{pages}")],
            ),
        ]
    )
    class Shop: ...

    return App.build(Shop)


def _from_environment() -> App:
    return build(*(os.environ[f"DOCKYARD_TT_{key}"] for key in ("SCHEMA", "ORDERS", "PAGES")))


app = _from_environment
"""What ``dockyard worker`` loads (a function: it reads the environment when called)."""
