"""Several transports in one app, on real brokers: orders go to RabbitMQ, page views to NATS,
from one PostgreSQL outbox; one worker consumes both. Each message reaches its broker and its
consumer once, and RabbitMQ down (behind a ``FaultProxy``) holds back neither the NATS messages
nor counts an attempt (no dead letters) for its own (docs/outbox.md, "Several transports")."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from faststream.rabbit import RabbitBroker

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Event, EventHandler
from dockyard.modules import ServiceState, module
from dockyard.outbox import OutboxModule, OutboxStatus, OutboxStore, RelaySettings, route
from dockyard.sql import SqlModule, SqlOutboxBackend
from dockyard.transport import Transport
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport
from faults import FaultProxy
from integration._apps.services import (
    NATS_URL,
    POSTGRES_URL,
    RABBIT_URL,
    create_schema,
    delete_declared,
    drop_schema,
    engine_options,
    unique,
)
from integration._apps.worker_process import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.rabbit, pytest.mark.nats]

_WAIT = 60.0
_EACH = 30


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    n: int


@dataclass(frozen=True, slots=True)
class PageViewed(Event):
    n: int


RECEIVED: Counter[tuple[str, int]] = Counter()
EVERY_ONCE = {(kind, n): 1 for kind in ("order", "page") for n in range(_EACH)}


class OnOrder(EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        RECEIVED["order", event.n] += 1


class OnPage(EventHandler[PageViewed]):
    async def handle(self, event: PageViewed, /) -> None:
        RECEIVED["page", event.n] += 1


@dataclass(frozen=True, slots=True)
class Apps:
    producer: App
    orders: str
    pages: str


@contextlib.asynccontextmanager
async def running(producer_rabbit: Transport) -> AsyncIterator[Apps]:
    """The producer (outbox and relays) and the consumer (both endpoints, one worker), in a
    schema of their own; every destination and schema is deleted afterwards."""
    RECEIVED.clear()
    schema = unique("dockyard_transports").replace("-", "_")
    orders, pages = unique("orders"), unique("pages")
    await create_schema(schema)
    sql = SqlModule.register(POSTGRES_URL, **engine_options(schema))
    producer_nats = NatsTransport(NATS_URL)
    consumer_rabbit, consumer_nats = RabbitTransport(RABBIT_URL), NatsTransport(NATS_URL)
    settings = RelaySettings(outage_pause=0.05, max_outage_pause=0.5)

    @module(
        imports=[
            sql,
            OutboxModule.register(
                transport=producer_rabbit,
                transports={"nats": producer_nats},
                backend=SqlOutboxBackend(),
                relay=settings,
                routes=[route(OrderPlaced).to(orders), route(PageViewed).to(f"nats://{pages}")],
            ),
        ]
    )
    class Shop: ...

    @module(
        handlers=[OnOrder, OnPage],
        imports=[
            sql,
            OutboxModule.register(
                transport=consumer_rabbit,
                transports={"nats": consumer_nats},
                backend=SqlOutboxBackend(),
                run_relay=False,
            ),
            ConsumerModule.register(
                endpoints=[listen(orders, group="g"), listen(f"nats://{pages}", group="g")]
            ),
        ],
    )
    class Analytics: ...

    producer, consumer = App.build(Shop), App.build(Analytics)
    stop = asyncio.Event()
    try:
        async with producer, consumer:
            workers = [
                asyncio.create_task(app.run_worker(stop=stop, grace=10.0, max_backoff=0.5))
                for app in (consumer, producer)
            ]
            try:
                # the consumers declared their queues: nothing published from now is missed
                await wait_until(lambda: consumer.health().ready, "the consumers", _WAIT)
                yield Apps(producer, orders, pages)
            finally:
                stop.set()
                await asyncio.wait_for(asyncio.gather(*workers), _WAIT)
    finally:
        for transport in (producer_rabbit, producer_nats, consumer_rabbit, consumer_nats):
            await transport.close()
        await delete_declared(consumer_rabbit, consumer_nats)
        await drop_schema(schema)


async def publish(app: App) -> None:
    for n in range(_EACH):
        await app.publish(OrderPlaced(n))
        await app.publish(PageViewed(n))


def received(kind: str) -> int:
    return sum(count for (k, _), count in RECEIVED.items() if k == kind)


async def test_each_message_reaches_its_broker_once() -> None:
    async with running(RabbitTransport(RABBIT_URL)) as apps:
        services = [s.name for s in apps.producer.background_services()]
        assert services == ["outbox-relay", "outbox-relay:nats"]
        await publish(apps.producer)
        await wait_until(lambda: sum(RECEIVED.values()) >= 2 * _EACH, "every message", _WAIT)
        store = await apps.producer.get(OutboxStore)
        counts = await store.counts_by_destination()
    assert dict(RECEIVED) == EVERY_ONCE
    assert counts[apps.orders][OutboxStatus.DELIVERED] == _EACH
    assert counts[f"nats://{apps.pages}"][OutboxStatus.DELIVERED] == _EACH


async def test_rabbit_down_holds_back_only_its_own_messages_and_makes_no_dead_letters() -> None:
    async with FaultProxy(5672) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        rabbit = RabbitTransport(broker=RabbitBroker(url, reconnect_interval=0.2, logger=None))
        async with running(rabbit) as apps:
            await proxy.refuse()  # RabbitMQ is gone for the producer: cut and refused
            await publish(apps.producer)
            await wait_until(lambda: received("page") >= _EACH, "the NATS messages", _WAIT)
            store = await apps.producer.get(OutboxStore)
            counts = await store.counts_by_destination()
            waiting = counts[apps.orders]
            assert waiting[OutboxStatus.DEAD] == 0
            assert waiting[OutboxStatus.DELIVERED] + waiting[OutboxStatus.PENDING] == _EACH
            health = {s.name: s.state for s in apps.producer.health().services}
            assert health["outbox-relay:nats"] is ServiceState.RUNNING

            await proxy.restore()
            await wait_until(lambda: received("order") >= _EACH, "the RabbitMQ messages", _WAIT)
            counts = await store.counts_by_destination()
    assert dict(RECEIVED) == EVERY_ONCE
    assert all(c[OutboxStatus.DEAD] == 0 for c in counts.values())
