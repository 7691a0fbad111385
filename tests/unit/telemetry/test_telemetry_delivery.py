"""One trace from a command through the outbox, the relay and a consumer to its handler."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from dockyard import App, module
from dockyard.consumer import ConsumerModule, ErrorPolicies, listen, retry_later
from dockyard.messaging import Command, CommandHandler, Event, EventHandler, IPublisher
from dockyard.outbox import OutboxModule, OutboxStatus, route
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.transport import TransportMessage
from dockyard.transport.memory import InMemoryTransport
from otel_sdk import Otel, otel_sdk


@pytest.fixture
def otel() -> Iterator[Otel]:
    yield from otel_sdk()


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[None]):
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    order_id: str
    fail: bool = False


class PlaceOrderHandler(CommandHandler[PlaceOrder, None]):
    def __init__(self, publisher: IPublisher) -> None:
        self._publisher = publisher

    async def handle(self, request: PlaceOrder, /) -> None:
        await self._publisher.publish(OrderPlaced(request.order_id, fail="bad" in request.order_id))


SEEN: list[str] = []


class Bill(EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        if event.fail:
            raise RuntimeError("card declined")
        SEEN.append(event.order_id)


@dataclass
class Apps:
    producer: App
    consumer: App
    backend: InMemoryOutboxBackend
    transport: InMemoryTransport


def build(otel: Otel) -> Apps:
    transport = InMemoryTransport()
    backend = InMemoryOutboxBackend()

    @module(
        handlers=[PlaceOrderHandler, route(OrderPlaced).to("orders")],
        imports=[OutboxModule.register(transport=transport, backend=backend)],
    )
    class Producer: ...

    @module(
        handlers=[Bill],
        imports=[
            OutboxModule.register(
                transport=transport, backend=InMemoryOutboxBackend(), run_relay=False
            ),
            ConsumerModule.register(
                endpoints=[
                    listen(
                        "orders", group="billing", policies=ErrorPolicies(default=retry_later(1))
                    )
                ]
            ),
        ],
    )
    class Billing: ...

    # Two apps, two Instruments: as two processes would have (one SDK pipeline to look at).
    return Apps(
        App.build(Producer, telemetry=otel.telemetry),
        App.build(Billing, telemetry=otel.telemetry),
        backend,
        transport,
    )


async def deliver(apps: Apps, *orders: str) -> None:
    SEEN.clear()
    async with apps.producer, apps.consumer:
        for order in orders:
            await apps.producer.send(PlaceOrder(order))
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(apps.producer.run_worker(stop=stop)),
            asyncio.create_task(apps.consumer.run_worker(stop=stop)),
        ]
        for _ in range(1000):
            await asyncio.sleep(0.01)
            counts = await apps.backend.store.counts()
            if counts[OutboxStatus.PENDING] == 0 and not apps.transport.pending(
                "orders", "billing"
            ):
                break
        await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*workers)


def chain(otel: Otel, last: ReadableSpan) -> list[str]:
    """Span names from the root down to ``last``, following parents."""
    by_id = {otel.id_of(s): s for s in otel.finished()}
    names = [last.name]
    span = last
    while (parent := otel.parent(span)) is not None:
        span = by_id[parent]
        names.append(span.name)
    return names[::-1]


async def test_one_trace_from_the_command_to_the_consumers_handler(otel: Otel) -> None:
    await deliver(build(otel), "o-1")
    assert SEEN == ["o-1"]
    bill = next(
        s for s in otel.finished() if (s.attributes or {}).get("dockyard.handler") == "Bill"
    )
    assert chain(otel, bill) == [
        "send PlaceOrder",
        "handle PlaceOrder",
        "publish OrderPlaced",
        "handle OrderPlaced",  # the route
        "create orders",  # the outbox write
        "publish orders",  # the relay
        "process orders",  # the consumer
        "publish OrderPlaced",
        "handle OrderPlaced",  # Bill
    ]
    assert len({s.context.trace_id for s in otel.finished() if s.context}) == 1

    create, relay, process = (
        otel.named(n) for n in ("create orders", "publish orders", "process orders")
    )
    assert (create.kind, relay.kind, process.kind) == (
        SpanKind.PRODUCER,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
    )
    message_id = (create.attributes or {})["messaging.message.id"]
    assert dict(relay.attributes or {}) == {
        "messaging.system": "dockyard",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": "orders",
        "messaging.message.id": message_id,
        "messaging.message.conversation_id": (create.attributes or {})[
            "messaging.message.conversation_id"
        ],
        "messaging.batch.message_count": 1,
    }
    attributes = process.attributes or {}
    assert attributes["messaging.message.id"] == message_id
    assert attributes["messaging.consumer.group.name"] == "billing"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["dockyard.outcome"] == "handled"


async def test_the_outbox_row_carries_the_create_spans_traceparent(otel: Otel) -> None:
    apps = build(otel)
    async with apps.producer:
        await apps.producer.send(PlaceOrder("o-1"))
    [row] = apps.backend.store._rows.values()
    create = otel.named("create orders")
    assert create.context is not None
    assert row.headers["traceparent"].startswith(
        f"00-{create.context.trace_id:032x}-{create.context.span_id:016x}-"
    )


async def test_delivery_metrics(otel: Otel) -> None:
    await deliver(build(otel), "o-1", "o-2")
    [(sent_attributes, sent)] = otel.points("messaging.client.sent.messages")
    assert sent_attributes == {
        "messaging.system": "dockyard",
        "messaging.destination.name": "orders",
    }
    assert sent.value == 2
    [(consumed_attributes, consumed)] = otel.points("messaging.client.consumed.messages")
    assert consumed_attributes == {
        "messaging.system": "dockyard",
        "messaging.destination.name": "orders",
        "messaging.consumer.group.name": "billing",
        "dockyard.outcome": "handled",
    }
    assert consumed.value == 2
    [(_, process)] = otel.points("messaging.process.duration")
    assert process.count == 2
    backlog = {
        a["dockyard.outbox.status"]: p.value for a, p in otel.points("dockyard.outbox.messages")
    }
    assert backlog["pending"] == 0
    assert backlog["delivered"] == 2
    [(_, oldest)] = otel.points("dockyard.outbox.oldest_pending_age")
    assert oldest.value == 0.0  # nothing waits once both are delivered


async def test_a_message_that_fails_for_good_fails_its_process_span(otel: Otel) -> None:
    await deliver(build(otel), "bad-1")
    process = otel.named("process orders")
    assert (process.attributes or {})["dockyard.outcome"] == "dead"
    assert process.status.status_code is StatusCode.ERROR
    handle = next(
        s for s in otel.finished() if (s.attributes or {}).get("dockyard.handler") == "Bill"
    )
    assert handle.status.status_code is StatusCode.ERROR
    assert otel.parent(handle) is not None


@dataclass(frozen=True, slots=True)
class Shipped(Event):
    order_id: str


RELEASE = asyncio.Event()


class Ship(EventHandler[Shipped]):
    async def handle(self, event: Shipped, /) -> None:
        await RELEASE.wait()


async def test_a_consumer_reports_its_groups_backlog_as_the_broker_counts_it(otel: Otel) -> None:
    RELEASE.clear()
    transport = InMemoryTransport()

    @module(
        handlers=[Ship],
        imports=[
            OutboxModule.register(
                transport=transport, backend=InMemoryOutboxBackend(), run_relay=False
            ),
            ConsumerModule.register(endpoints=[listen("shipping", group="dock")]),
        ],
    )
    class Shipping: ...

    def lag() -> int | None:
        points = otel.points("dockyard.consumer.lag")
        found = {
            (a["messaging.destination.name"], a["messaging.consumer.group.name"]): p.value
            for a, p in points
        }
        return found.get(("shipping", "dock"))

    await transport.declare("shipping", "dock")
    for n in range(3):  # what another app's relay would have published
        payload = f'{{"order_id":"o-{n}"}}'.encode()
        await transport.publish(TransportMessage(f"m-{n}", "shipping", "Shipped", payload))
    telemetry = dataclasses.replace(otel.telemetry, backlog_interval=0.02)
    async with App.build(Shipping, telemetry=telemetry) as app:
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        try:
            async with asyncio.timeout(60):  # a guard against a hang
                while lag() != 2:  # noqa: ASYNC110 - polling a metric reader
                    await asyncio.sleep(0.01)  # one in the handler, two waiting
                RELEASE.set()
                while lag() != 0:  # noqa: ASYNC110 - polling a metric reader
                    await asyncio.sleep(0.01)
        finally:
            RELEASE.set()
            stop.set()
            await worker
