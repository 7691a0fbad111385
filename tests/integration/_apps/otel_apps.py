"""Two apps with telemetry over a broker: the test's process places orders, this one bills.

* orders (in the test's process): ``PlaceOrder`` publishes ``OrderPlaced``, routed to
  ``{namespace}.orders``; its relay publishes it to RabbitMQ.
* billing (this module as a process): consumes ``{namespace}.orders`` (group ``billing``)
  and handles ``OrderPlaced``; every span it ends is written as one JSON line to a file.

Run: ``python -m integration._apps.otel_apps rabbit|nats|redis <namespace> <spans file>``; it
runs its worker until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Command, CommandHandler, Event, EventHandler, IPublisher
from dockyard.modules import module
from dockyard.outbox import OutboxModule, route
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.telemetry import Telemetry
from dockyard.transport import Transport
from integration._apps.services import NATS_URL, rabbit_url

REDIS_URL = "redis://127.0.0.1:6379"


def transport_for(broker: str, name: str) -> Transport:
    if broker == "rabbit":
        from dockyard.transport.rabbit import RabbitTransport

        return RabbitTransport(rabbit_url(name))
    if broker == "nats":
        from dockyard.transport.nats import NatsTransport

        return NatsTransport(NATS_URL)
    from dockyard.transport.redis import RedisTransport

    return RedisTransport(REDIS_URL, poll_interval=0.05)


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[None]):
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    order_id: str


class PlaceOrderHandler(CommandHandler[PlaceOrder, None]):
    def __init__(self, publisher: IPublisher) -> None:
        self._publisher = publisher

    async def handle(self, request: PlaceOrder, /) -> None:
        await self._publisher.publish(OrderPlaced(request.order_id))


class Bill(EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        return None


def orders_app(transport: Transport, namespace: str, telemetry: Telemetry) -> App:
    @module(
        handlers=[PlaceOrderHandler, route(OrderPlaced).to(f"{namespace}.orders")],
        imports=[OutboxModule.register(transport=transport, backend=InMemoryOutboxBackend())],
    )
    class Orders: ...

    return App.build(Orders, telemetry=telemetry)


def billing_app(transport: Transport, namespace: str, telemetry: Telemetry) -> App:
    @module(
        handlers=[Bill],
        imports=[
            OutboxModule.register(
                transport=transport, backend=InMemoryOutboxBackend(), run_relay=False
            ),
            ConsumerModule.register(endpoints=[listen(f"{namespace}.orders", group="billing")]),
        ],
    )
    class Billing: ...

    return App.build(Billing, telemetry=telemetry)


def as_json(span: ReadableSpan) -> str:
    assert span.context is not None
    return json.dumps(
        {
            "name": span.name,
            "kind": span.kind.name,
            "trace_id": f"{span.context.trace_id:032x}",
            "span_id": f"{span.context.span_id:016x}",
            "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
            "attributes": dict(span.attributes or {}),
        }
    )


class JsonLines(SpanExporter):
    """Appends each span to a file as one JSON line, flushed at once (the test reads it)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            self._file.write(as_json(span) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


async def main(broker: str, namespace: str, spans: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLines(Path(spans))))
    transport = transport_for(broker, f"{namespace}-billing")
    try:
        app = billing_app(transport, namespace, Telemetry(tracer_provider=provider))
        await app.run_worker(grace=5.0)
    finally:
        await transport.close()
        provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
