"""Routes, the outbox in a scope, consumers with the inbox, dead letters, the worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from dockyard.app import App
from dockyard.consumer import Consumer, ConsumerModule, ErrorPolicies, Outcome, listen, retry_later
from dockyard.exceptions import DeadLetterNotFoundError, InvalidRouteError
from dockyard.messaging import Command, Event, EventHandler, IPublisher, RequestHandler
from dockyard.modules import module
from dockyard.outbox import (
    DeadLetters,
    Outbox,
    OutboxModule,
    OutboxStatus,
    route,
    route_of,
)
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.serialization import Serializer, TypeRegistry
from dockyard.transport import CAUSATION_ID, CORRELATION_ID, Delivery, TransportMessage
from dockyard.transport.memory import InMemoryTransport


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    order_id: str


@dataclass(frozen=True, slots=True)
class OrderViewed(Event):
    order_id: str


@dataclass(frozen=True, slots=True)
class ReserveStock(Command[None]):
    order_id: str


@dataclass(frozen=True, slots=True)
class PlaceOrder(Command[None]):
    order_id: str
    fail: bool = False


class PlaceOrderHandler(RequestHandler[PlaceOrder, None]):
    def __init__(self, publisher: IPublisher) -> None:
        self._publisher = publisher

    async def handle(self, request: PlaceOrder, /) -> None:
        await self._publisher.publish(OrderPlaced(request.order_id))
        await self._publisher.publish(OrderViewed(request.order_id))
        if request.fail:
            raise RuntimeError("payment declined")


class Recorder:
    def __init__(self) -> None:
        self.seen: list[object] = []
        self.failures = 0


RECORDER = Recorder()


class OnPlaced(EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        if RECORDER.failures:
            RECORDER.failures -= 1
            raise ValueError("stock service down")
        RECORDER.seen.append(event)


class OnReserve(RequestHandler[ReserveStock, None]):
    async def handle(self, request: ReserveStock, /) -> None:
        RECORDER.seen.append(request)


@pytest.fixture(autouse=True)
def _fresh_recorder() -> None:
    RECORDER.seen.clear()
    RECORDER.failures = 0


@dataclass
class Apps:
    producer: App
    consumer: App
    transport: InMemoryTransport
    backend: InMemoryOutboxBackend
    consumer_backend: InMemoryOutboxBackend


@pytest.fixture
async def apps() -> AsyncIterator[Apps]:
    transport = InMemoryTransport()
    backend, consumer_backend = InMemoryOutboxBackend(), InMemoryOutboxBackend()
    fast = ErrorPolicies(default=retry_later(3, initial_delay=0.0))

    @module(
        handlers=[
            PlaceOrderHandler,
            route(OrderPlaced).to("orders", partition_key=lambda e: e.order_id),
        ],
    )
    class Orders: ...

    @module(
        imports=[
            Orders,
            OutboxModule.register(
                transport=transport,
                backend=backend,
                routes=[route(ReserveStock).to("inventory")],
            ),
        ]
    )
    class Producer: ...

    @module(
        handlers=[OnPlaced, OnReserve],
        imports=[
            OutboxModule.register(transport=transport, backend=consumer_backend, run_relay=False),
            ConsumerModule.register(
                endpoints=[
                    listen("orders", group="billing", policies=fast),
                    listen("inventory", group="stock", policies=fast),
                ]
            ),
        ],
    )
    class Billing: ...

    producer, consumer = App.build(Producer), App.build(Billing)
    async with producer, consumer:
        yield Apps(producer, consumer, transport, backend, consumer_backend)


async def run_worker_until(apps: Apps, done: asyncio.Event | None = None) -> None:
    """Run both apps' workers until the transport is drained (or ``done``)."""
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(apps.producer.run_worker(stop=stop)),
        asyncio.create_task(apps.consumer.run_worker(stop=stop)),
    ]
    for _ in range(500):
        await asyncio.sleep(0.01)
        counts = await apps.backend.store.counts()
        idle = counts[OutboxStatus.PENDING] == 0 and not any(
            apps.transport.pending(d, g) for d, g in (("orders", "billing"), ("inventory", "stock"))
        )
        if (done is not None and done.is_set()) or (done is None and idle):
            break
    await asyncio.sleep(0.02)
    stop.set()
    await asyncio.gather(*workers)


async def test_a_routed_event_is_written_with_its_envelope_and_unrouted_ones_stay_local(
    apps: Apps,
) -> None:
    await apps.producer.send(PlaceOrder("o-1"), correlation_id="conv-1")
    rows = list(apps.backend.store._rows.values())
    assert [(r.destination, r.type_name, r.partition_key) for r in rows] == [
        ("orders", "OrderPlaced", "o-1")  # OrderViewed has no route: it stayed local
    ]
    assert rows[0].headers[CORRELATION_ID] == "conv-1"
    assert rows[0].headers[CAUSATION_ID] != rows[0].message_id  # caused by PlaceOrder
    assert Serializer(TypeRegistry([OrderPlaced])).deserialize(
        rows[0].type_name, 1, rows[0].payload
    ) == OrderPlaced("o-1")


async def test_nothing_is_written_when_the_scope_fails(apps: Apps) -> None:
    with pytest.raises(RuntimeError, match="payment declined"):
        await apps.producer.send(PlaceOrder("o-1", fail=True))
    assert (await apps.backend.store.counts())[OutboxStatus.PENDING] == 0


async def test_routed_events_and_commands_reach_the_other_app_once(apps: Apps) -> None:
    await apps.producer.send(PlaceOrder("o-1"))
    await apps.producer.send(ReserveStock("o-1"))  # fire and forget: answered by the route
    await run_worker_until(apps)
    assert RECORDER.seen == [OrderPlaced("o-1"), ReserveStock("o-1")]
    assert (await apps.backend.store.counts())[OutboxStatus.DELIVERED] == 2

    # the relay crashed after publishing: the same message comes again; the inbox skips it
    delivered = next(iter(apps.backend.store._rows.values()))
    await apps.transport.publish(delivered.to_transport())
    await run_worker_until(apps)
    assert RECORDER.seen == [OrderPlaced("o-1"), ReserveStock("o-1")]
    assert (delivered.message_id, "billing") in apps.consumer_backend.inbox.handled


async def test_an_outbox_row_can_be_written_by_a_handler(apps: Apps) -> None:
    async with apps.producer.scope() as scope:
        outbox = await scope.get(Outbox)
        message_id = await outbox.add(
            OrderPlaced("o-9"), destination="orders", headers={"tenant": "t1"}
        )
    stored = await apps.backend.store.get(message_id)
    assert stored is not None
    assert stored.headers["tenant"] == "t1"
    assert stored.headers[CORRELATION_ID] == message_id  # it starts a conversation


class FakeDelivery(Delivery):
    def __init__(self, message: TransportMessage, attempt: int = 1) -> None:
        self._message, self._attempt = message, attempt
        self.outcome = ""

    @property
    def message(self) -> TransportMessage:
        return self._message

    @property
    def attempt(self) -> int:
        return self._attempt

    async def ack(self) -> None:
        self.outcome = "ack"

    async def nack(self, *, delay: float = 0.0) -> None:
        self.outcome = f"nack after {delay:g}s"


async def consumer_of(apps: Apps) -> Consumer:
    services = apps.consumer.background_services()
    assert [s.name for s in services] == ["consumer:orders:billing", "consumer:inventory:stock"]
    built = await services[0].build()  # type: ignore[attr-defined]
    assert isinstance(built, Consumer)
    return built


@pytest.mark.parametrize(
    ("type_name", "payload", "reason"),
    [
        ("Refunded", b"{}", "unknown message type `Refunded`: no handler of this app"),
        (
            "OrderPlaced",
            b'{"order": 1}',
            "the payload of `OrderPlaced` (schema version 1) cannot be decoded",
        ),
    ],
)
async def test_bad_input_becomes_a_dead_letter_and_the_consumer_goes_on(
    apps: Apps, type_name: str, payload: bytes, reason: str
) -> None:
    consumer = await consumer_of(apps)
    bad = FakeDelivery(TransportMessage("bad-1", "orders", type_name, payload))
    assert await consumer.handle(bad) is Outcome.DEAD
    assert bad.outcome == "ack"
    good = FakeDelivery(TransportMessage("ok-1", "orders", "OrderPlaced", b'{"order_id":"o"}'))
    assert await consumer.handle(good) is Outcome.HANDLED
    dead = await apps.consumer.get(DeadLetters)
    [letter] = await dead.list()
    assert letter.message_id == "bad-1"
    assert letter.last_error is not None
    assert letter.last_error.startswith(f"consumer:orders:billing: {reason}")


async def test_a_failing_handler_is_retried_then_dead_lettered_then_replayed(
    apps: Apps,
) -> None:
    consumer = await consumer_of(apps)
    RECORDER.failures = 3
    message = TransportMessage("m-1", "orders", "OrderPlaced", b'{"order_id":"o-1"}')
    first = FakeDelivery(message, attempt=1)
    assert await consumer.handle(first) is Outcome.RETRY
    assert first.outcome == "nack after 0s"
    assert await consumer.handle(FakeDelivery(message, attempt=2)) is Outcome.RETRY
    assert await consumer.handle(FakeDelivery(message, attempt=3)) is Outcome.DEAD
    dead_letters = await apps.consumer.get(DeadLetters)
    [letter] = await dead_letters.list()
    assert letter.last_error == "consumer:orders:billing: ValueError: stock service down"
    assert letter.attempts == 3

    assert await dead_letters.replay("m-1") == ["m-1"]
    assert await dead_letters.list() == []
    with pytest.raises(DeadLetterNotFoundError, match="No dead letter with message id `m-1`"):
        await dead_letters.purge("m-1")
    replayed = await apps.consumer_backend.store.get("m-1")
    assert replayed is not None
    assert replayed.status is OutboxStatus.PENDING  # the consumer app's relay republishes it


def test_routes_are_checked() -> None:
    with pytest.raises(InvalidRouteError, match="Cannot route `OrderPlaced`: the destination"):
        route(OrderPlaced).to("  ")
    with pytest.raises(InvalidRouteError, match="it is not a message class"):
        route("OrderPlaced")  # type: ignore[arg-type]
    with pytest.raises(InvalidRouteError, match="was not made by `route"):
        OutboxModule.register(transport=InMemoryTransport(), routes=[OnPlaced])
    handler = route(OrderPlaced).to("orders")
    found = route_of(handler)
    assert found is not None
    assert (found.message_type, found.destination) == (OrderPlaced, "orders")
    assert handler.__qualname__ == "Route[OrderPlaced → orders]"


async def test_the_worker_stops_on_its_stop_event_and_reports_failures() -> None:
    class Broken:
        name = "broken"

        async def run(self, stop: asyncio.Event) -> None:
            raise OSError("disk full")

    from dockyard.modules import ProvidesBackgroundServices

    class Services(ProvidesBackgroundServices):
        def background_services(self, app: App) -> list[Broken]:
            return [Broken()]

    @module(extensions=[Services()])
    class Root: ...

    app = App.build(Root)
    with pytest.raises(ExceptionGroup, match="1 of 1 background services failed") as caught:
        await asyncio.wait_for(app.run_worker(), 5)
    assert isinstance(caught.value.exceptions[0], OSError)
    assert not app.is_started
