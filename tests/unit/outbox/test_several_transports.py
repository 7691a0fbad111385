"""Several transports in one app: routes and endpoints pick theirs by the destination's prefix,
the relay runs one loop per transport, and one broker down or stalled holds back only its own
messages (docs/outbox.md, "Several transports")."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import ClassVar

import pytest

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.exceptions import ModuleConfigurationError, UnknownTransportError
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import OutboxModule, OutboxStatus, OutboxStore, Transports, route
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.transport import Transport, TransportMessage
from dockyard.transport.memory import InMemoryTransport


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    number: int


@dataclass(frozen=True, slots=True)
class PageViewed(Event):
    number: int


class Seen:
    """What the handlers received, and an event set once ``expected`` messages came."""

    def __init__(self) -> None:
        self.received: Counter[tuple[str, int]] = Counter()
        self.expected = 0
        self.complete = asyncio.Event()

    def add(self, kind: str, number: int) -> None:
        self.received[kind, number] += 1
        if sum(self.received.values()) >= self.expected:
            self.complete.set()

    async def wait_for(self, expected: int) -> None:
        self.expected = expected
        if sum(self.received.values()) < expected:
            self.complete.clear()
            await asyncio.wait_for(self.complete.wait(), 60)


SEEN = Seen()


class OnOrder(EventHandler[OrderPlaced]):
    async def handle(self, event: OrderPlaced, /) -> None:
        SEEN.add("order", event.number)


class OnPage(EventHandler[PageViewed]):
    async def handle(self, event: PageViewed, /) -> None:
        SEEN.add("page", event.number)


class Stalled(InMemoryTransport):
    """Accepts nothing until ``release`` is set: a broker that takes its time."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def publish(self, message: TransportMessage, /) -> None:
        await self.release.wait()
        await super().publish(message)

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        await self.release.wait()
        await super().publish_many(messages)


def shop(first: Transport, second: Transport) -> App:
    """Routes orders to the first transport, page views to the second (``b://``); each
    destination is named ``events`` on its own broker."""

    @module(
        imports=[
            OutboxModule.register(
                transport=first,
                transports={"b": second},
                backend=InMemoryOutboxBackend(),
                routes=[route(OrderPlaced).to("events"), route(PageViewed).to("b://events")],
            )
        ],
    )
    class Shop: ...

    return App.build(Shop)


def analytics(first: Transport, second: Transport) -> App:
    """Consumes both destinations, in one worker."""
    global SEEN  # noqa: PLW0603 - the handlers' record, fresh per test
    SEEN = Seen()

    @module(
        handlers=[OnOrder, OnPage],
        imports=[
            OutboxModule.register(
                transport=first,
                transports={"b": second},
                backend=InMemoryOutboxBackend(),
                run_relay=False,
            ),
            ConsumerModule.register(
                endpoints=[listen("events", group="shop"), listen("b://events", group="shop")]
            ),
        ],
    )
    class Analytics: ...

    return App.build(Analytics)


@contextlib.asynccontextmanager
async def workers(first: Transport, second: Transport) -> AsyncIterator[App]:
    """The producing app (started, its relays running) and the consuming app's worker."""
    producer, consumer = shop(first, second), analytics(first, second)
    stop = asyncio.Event()
    async with producer:
        tasks = [
            asyncio.create_task(app.run_worker(stop=stop, grace=5.0))
            for app in (producer, consumer)
        ]
        try:
            yield producer
        finally:
            stop.set()
            await asyncio.gather(*tasks)


async def publish(app: App, count: int) -> None:
    for n in range(count):
        await app.publish(OrderPlaced(n))
        await app.publish(PageViewed(n))


async def test_each_destination_reaches_its_transport_once() -> None:
    first, second = InMemoryTransport(), InMemoryTransport()
    services = [s.name for s in shop(first, second).background_services()]
    assert services == ["outbox-relay", "outbox-relay:b"]
    services = [s.name for s in analytics(first, second).background_services()]
    assert services == ["consumer:events:shop", "consumer:b://events:shop"]
    async with workers(first, second) as app:
        await publish(app, 20)
        await SEEN.wait_for(40)
    assert SEEN.received == {(kind, n): 1 for kind in ("order", "page") for n in range(20)}


async def test_a_transport_down_holds_back_only_its_own_messages_and_makes_no_dead_letters() -> (
    None
):
    first, second = InMemoryTransport(), InMemoryTransport()
    second.go_offline()
    async with workers(first, second) as app:
        await publish(app, 10)
        await SEEN.wait_for(10)  # the orders, while b is down
        assert set(SEEN.received) == {("order", n) for n in range(10)}
        store = await app.get(OutboxStore)
        counts = await store.counts()
        assert counts[OutboxStatus.DEAD] == 0
        second.go_online()
        await SEEN.wait_for(20)
    assert SEEN.received == {(kind, n): 1 for kind in ("order", "page") for n in range(10)}
    counts = await store.counts()
    assert counts[OutboxStatus.DEAD] == 0
    assert counts[OutboxStatus.PENDING] == 0


async def test_a_stalled_broker_holds_back_only_its_own_messages() -> None:
    first, second = InMemoryTransport(), Stalled()
    async with workers(first, second) as app:
        await publish(app, 10)
        await SEEN.wait_for(10)  # the orders, while b's publish waits
        assert set(SEEN.received) == {("order", n) for n in range(10)}
        second.release.set()
        await SEEN.wait_for(20)
    assert SEEN.received == {(kind, n): 1 for kind in ("order", "page") for n in range(10)}


class Rabbitish(InMemoryTransport):
    """In memory, named like a broker: destinations must name it or another transport."""

    scheme: ClassVar[str] = "rabbit"


def test_a_route_to_an_unknown_transport_fails_the_build_naming_the_transports() -> None:
    @module(
        imports=[
            OutboxModule.register(
                transport=Rabbitish(),
                transports={"nats": InMemoryTransport()},
                backend=InMemoryOutboxBackend(),
                routes=[
                    route(OrderPlaced).to("kafka://orders"),
                    route(PageViewed).to("rabbit://pages"),  # the first transport's scheme
                ],
            ),
            ConsumerModule.register(endpoints=[listen("redis://pages", group="g")]),
        ]
    )
    class Root: ...

    with pytest.raises(ModuleConfigurationError) as raised:
        App.build(Root)
    problems = raised.value.problems
    assert [type(p) for p in problems] == [UnknownTransportError, UnknownTransportError]
    first, second = (str(p) for p in problems)
    assert "sends to `kafka://orders`" in first
    assert "its transports are `rabbit://`, `nats://`" in first
    assert 'transports={"kafka": ...}' in first
    assert "consumer:redis://pages:g" in second


def test_a_single_transport_refuses_another_scheme() -> None:
    # Before: a `kafka://` prefix on a RabbitMQ app only stripped the scheme.
    @module(
        imports=[
            OutboxModule.register(
                transport=Rabbitish(),
                backend=InMemoryOutboxBackend(),
                routes=[route(OrderPlaced).to("kafka://orders")],
            )
        ]
    )
    class Root: ...

    with pytest.raises(ModuleConfigurationError, match="no transport named `kafka`"):
        App.build(Root)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Nats", "is not a URL scheme"),
        ("rabbit", "is the first transport's scheme"),
    ],
)
def test_transport_names_are_checked_when_registered(name: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        OutboxModule.register(transport=Rabbitish(), transports={name: InMemoryTransport()})


def test_a_destination_picks_its_transport_by_prefix() -> None:
    first, second = Rabbitish(), InMemoryTransport()
    transports = Transports(first, {"nats": second})
    assert transports.names == ("rabbit", "nats")
    picked = {d: found.name if (found := transports.find(d)) else None for d in (
        "orders", "rabbit://orders", "nats://orders", "kafka://orders"
    )}  # fmt: skip
    assert picked == {
        "orders": "rabbit",
        "rabbit://orders": "rabbit",
        "nats://orders": "nats",
        "kafka://orders": None,
    }
