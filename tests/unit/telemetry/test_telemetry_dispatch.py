"""Spans and metrics of send, publish and stream: names, parents, attributes, errors."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from dockyard import App, module
from dockyard.exceptions import MissingExtraError
from dockyard.messaging import (
    Command,
    CommandHandler,
    Event,
    EventDelivery,
    EventHandler,
    ISender,
    MessagingSettings,
    PipelineBehavior,
    StreamHandler,
    StreamRequest,
)
from dockyard.messaging._bus import Dispatcher
from dockyard.messaging._plan import EventPlan, RequestPlan, StreamPlan
from dockyard.telemetry import Instruments, Telemetry
from otel_sdk import Otel, otel_sdk


@pytest.fixture
def otel() -> Iterator[Otel]:
    yield from otel_sdk()


@dataclass(frozen=True, slots=True)
class Ship(Command[str]):
    order_id: str


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[str]):
    order_id: str
    fail: bool = False


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    order_id: str


@dataclass(frozen=True, slots=True)
class ListLines(StreamRequest[int]):
    count: int


class ShipHandler(CommandHandler[Ship, str]):
    async def handle(self, request: Ship, /) -> str:
        return f"shipped {request.order_id}"


class PlaceOrderHandler(CommandHandler[PlaceOrder, str]):
    def __init__(self, sender: ISender) -> None:
        self._sender = sender

    async def handle(self, request: PlaceOrder, /) -> str:
        if request.fail:
            raise ValueError("no stock")
        return await self._sender.send(Ship(request.order_id))


class Email(EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        return None


class Invoice(EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        return None


class Lines(StreamHandler[ListLines, int]):
    def __init__(self, sender: ISender) -> None:
        self._sender = sender

    async def handle(self, request: ListLines, /) -> AsyncIterator[int]:
        for line in range(request.count):
            await self._sender.send(Ship(str(line)))
            yield line


class Audit(PipelineBehavior[Command[str], str]):
    async def handle(self, message: Command[str], call_next: Callable[[], Awaitable[str]]) -> str:
        return await call_next()


@module(handlers=[ShipHandler, PlaceOrderHandler, Email, Invoice, Lines])
class Root: ...


def build(otel: Otel, **messaging: object) -> App:
    settings = MessagingSettings(**messaging)  # type: ignore[arg-type]
    return App.build(Root, telemetry=otel.telemetry, messaging=settings)


async def test_a_send_is_a_span_with_its_handler_as_child(otel: Otel) -> None:
    async with build(otel) as app:
        assert await app.send(PlaceOrder("o-1")) == "shipped o-1"
    send = otel.named("send PlaceOrder")
    handle = otel.named("handle PlaceOrder")
    nested_send, nested_handle = otel.named("send Ship"), otel.named("handle Ship")
    assert otel.parent(send) is None
    assert otel.parent(handle) == otel.id_of(send)
    assert otel.parent(nested_send) == otel.id_of(handle)  # sent from inside the handler
    assert otel.parent(nested_handle) == otel.id_of(nested_send)
    assert len({s.context.trace_id for s in otel.finished() if s.context}) == 1
    assert send.kind is SpanKind.INTERNAL
    assert dict(send.attributes or {}) == {
        "messaging.system": "dockyard",
        "messaging.operation.name": "send",
        "messaging.destination.name": "PlaceOrder",
    }
    assert dict(handle.attributes or {}) == {
        "messaging.system": "dockyard",
        "messaging.operation.type": "process",
        "messaging.operation.name": "handle",
        "messaging.destination.name": "PlaceOrder",
        "dockyard.handler": "PlaceOrderHandler",
    }
    assert send.status.status_code is StatusCode.UNSET


async def test_a_failing_handler_fails_its_span_and_the_send_and_is_measured(otel: Otel) -> None:
    async with build(otel) as app:
        with pytest.raises(ValueError, match="no stock"):
            await app.send(PlaceOrder("o-1", fail=True))
    for name in ("send PlaceOrder", "handle PlaceOrder"):
        span = otel.named(name)
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ValueError: no stock"
        assert (span.attributes or {})["error.type"] == "ValueError"
        assert [e.name for e in span.events] == ["exception"]
    [(attributes, point)] = otel.points("dockyard.handler.duration")
    assert attributes == {
        "dockyard.message.type": "PlaceOrder",
        "dockyard.handler": "PlaceOrderHandler",
        "error.type": "ValueError",
    }
    assert point.count == 1


async def test_handler_durations_are_recorded_by_message_type_and_handler(otel: Otel) -> None:
    async with build(otel) as app:
        await app.send(PlaceOrder("o-1"))
        await app.send(PlaceOrder("o-2"))
    counts = {a["dockyard.handler"]: p.count for a, p in otel.points("dockyard.handler.duration")}
    assert counts == {"PlaceOrderHandler": 2, "ShipHandler": 2}


async def test_behaviors_are_events_on_the_send_span(otel: Otel) -> None:
    async with build(otel, behaviors=[Audit]) as app:
        await app.send(PlaceOrder("o-1"))
    send = otel.named("send PlaceOrder")
    assert [(e.name, dict(e.attributes or {})) for e in send.events] == [
        ("behavior Audit", {"dockyard.behavior": "Audit"})
    ]
    assert otel.parent(otel.named("handle PlaceOrder")) == otel.id_of(send)


@pytest.mark.parametrize(
    "delivery", [EventDelivery(), EventDelivery(concurrent=True)], ids=["sequential", "concurrent"]
)
async def test_a_publish_is_a_span_with_a_child_per_handler(
    otel: Otel, delivery: EventDelivery
) -> None:
    async with build(otel, event_delivery=delivery) as app:
        await app.publish(OrderPlaced("o-1"))
    publish = otel.named("publish OrderPlaced")
    handlers = [s for s in otel.finished() if s.name == "handle OrderPlaced"]
    assert sorted(str((s.attributes or {})["dockyard.handler"]) for s in handlers) == [
        "Email",
        "Invoice",
    ]
    assert {otel.parent(s) for s in handlers} == {otel.id_of(publish)}


async def test_a_stream_span_lasts_until_the_stream_ends(otel: Otel) -> None:
    async with build(otel) as app:
        assert [line async for line in app.stream(ListLines(2))] == [0, 1]
    stream, handle = otel.named("stream ListLines"), otel.named("handle ListLines")
    assert otel.parent(handle) == otel.id_of(stream)
    sends = [s for s in otel.finished() if s.name == "send Ship"]
    assert [otel.parent(s) for s in sends] == [otel.id_of(handle)] * 2  # sent while iterating
    assert (stream.attributes or {})["dockyard.stream.items"] == 2
    assert stream.end_time is not None
    assert handle.end_time is not None
    assert stream.end_time >= max(s.end_time or 0 for s in sends)


async def test_a_tracked_message_carries_its_ids(otel: Otel) -> None:
    async with build(otel, track_context=True) as app:
        await app.send(Ship("o-1"), message_id="m-1", correlation_id="c-1")
    attributes = otel.named("send Ship").attributes or {}
    assert attributes["messaging.message.id"] == "m-1"
    assert attributes["messaging.message.conversation_id"] == "c-1"


def plan_types(app: App) -> set[type]:
    dispatcher: Dispatcher = app._messaging.dispatcher
    plans = [*dispatcher.requests.values(), *dispatcher.streams.values()]
    return {type(plan) for plan in (*plans, *dispatcher.events.values())}


@pytest.mark.parametrize("telemetry", [None, Telemetry(enabled=False)], ids=["none", "disabled"])
def test_without_telemetry_the_plans_are_the_plain_ones(telemetry: Telemetry | None) -> None:
    app = App.build(Root, telemetry=telemetry)
    assert plan_types(app) == {RequestPlan, StreamPlan, EventPlan}
    assert not app.instruments.active
    assert app.instruments.tracer is None


def test_with_telemetry_every_plan_is_traced(otel: Otel) -> None:
    types = plan_types(build(otel))
    assert len(types) == 3
    assert not types & {RequestPlan, StreamPlan, EventPlan}


async def test_metrics_only_makes_no_spans(otel: Otel) -> None:
    telemetry = Telemetry(meter_provider=otel.telemetry.meter_provider, traces=False)
    async with App.build(Root, telemetry=telemetry) as app:
        await app.send(PlaceOrder("o-1"))
    assert otel.finished() == []
    assert len(otel.points("dockyard.handler.duration")) == 2


async def test_the_instruments_are_injectable(otel: Otel) -> None:
    async with build(otel) as app, app.scope() as scope:
        assert await scope.get(Instruments) is app.instruments


def test_enabled_without_opentelemetry_says_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'dockyard\[otel\]'"):
        App.build(Root, telemetry=Telemetry())
    App.build(Root, telemetry=Telemetry(enabled=False))  # needs nothing


async def test_with_the_api_alone_everything_dispatches_as_before() -> None:
    # No SDK configured (nothing in this test process sets a global provider): the API's
    # no-op spans and instruments, on the traced plans.
    async with App.build(Root, telemetry=Telemetry(), messaging=MessagingSettings()) as app:
        assert await app.send(PlaceOrder("o-1")) == "shipped o-1"
        await app.publish(OrderPlaced("o-1"))
        assert [line async for line in app.stream(ListLines(2))] == [0, 1]
        with pytest.raises(ValueError, match="no stock"):
            await app.send(PlaceOrder("o-2", fail=True))
