"""Each transport's relay loop may have its own ``RelaySettings`` (``OutboxModule.register(
relays={name: ...})``), the app's otherwise; ``outbox_status`` reports per transport
(docs/outbox.md, "Several transports")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pytest

from dockyard.app import App
from dockyard.exceptions import (
    ModuleConfigurationError,
    UnknownRelayTransportError,
    UnknownTransportError,
)
from dockyard.messaging import Event
from dockyard.modules import ServiceState, module
from dockyard.outbox import (
    OutboxModule,
    OutboxStatus,
    OutboxStore,
    RelaySettings,
    TransportStatus,
    outbox_status,
    route,
)
from dockyard.retry import RetryPolicy
from dockyard.telemetry import Telemetry
from dockyard.transport import TransportMessage
from dockyard.transport.memory import InMemoryTransport
from otel_sdk import Otel, otel_sdk


@dataclass(frozen=True, slots=True)
class OrderPlaced(Event):
    number: int


@dataclass(frozen=True, slots=True)
class PageViewed(Event):
    number: int


class Refusing(InMemoryTransport):
    """A broker that refuses every message (the message's failure: attempts are counted);
    remembers the size of each batch it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    async def publish(self, message: TransportMessage, /) -> None:
        msg = f"refused {message.destination}"
        raise RuntimeError(msg)

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        self.batches.append(len(messages))
        await super().publish_many(messages)


def quick(attempts: int, *, batch_size: int = 500) -> RelaySettings:
    """Retries without a wait worth speaking of: a message is dead after ``attempts``."""
    retry = RetryPolicy(max_attempts=attempts, initial_delay=0.001, max_delay=0.001, jitter=False)
    return RelaySettings(batch_size=batch_size, retry=retry, max_poll_interval=0.01)


def shop(
    first: InMemoryTransport,
    second: InMemoryTransport,
    *,
    relay: RelaySettings | None = None,
    relays: Mapping[str, RelaySettings] | None = None,
    telemetry: Telemetry | None = None,
) -> App:
    @module(
        imports=[
            OutboxModule.register(
                transport=first,
                transports={"analytics": second},
                relay=relay,
                relays=relays,
                routes=[
                    route(OrderPlaced).to("orders"),
                    route(PageViewed).to("analytics://views"),
                ],
            )
        ]
    )
    class Shop: ...

    return App.build(Shop, telemetry=telemetry)


async def run_until(app: App, done: Callable[[], Awaitable[bool]], what: str) -> None:
    """Run the worker until ``done()`` (checked every 10 ms, up to 60 s on a loaded machine)."""
    stop = asyncio.Event()
    worker = asyncio.create_task(app.run_worker(stop=stop, grace=5.0))
    try:
        for _ in range(6000):
            if await done():
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"{what}: not within 60 s")
    finally:
        stop.set()
        await worker


async def dead_after(app: App, messages: int) -> dict[str, int]:
    """Run the worker until ``messages`` are dead letters; their attempts by destination."""
    store = await app.get(OutboxStore)

    async def dead() -> bool:
        return bool((await store.counts())[OutboxStatus.DEAD] >= messages)

    await run_until(app, dead, f"{messages} dead letters")
    dead_letters = await store.dead_letters(limit=100)
    return {m.destination: m.attempts for m in dead_letters}


async def test_each_transport_dead_letters_after_its_own_attempt_budget() -> None:
    first, second = Refusing(), Refusing()
    app = shop(first, second, relay=quick(2), relays={"analytics": quick(5, batch_size=3)})
    async with app:
        for n in range(4):
            await app.publish(PageViewed(n))
        await app.publish(OrderPlaced(1))
        attempts = await dead_after(app, 5)
    assert attempts == {"orders": 2, "analytics://views": 5}
    assert max(second.batches) == 3  # its own batch size: 4 messages never in one batch
    assert max(first.batches) == 1


async def test_the_first_transport_can_be_named_in_relays_too() -> None:
    first, second = Refusing(), Refusing()
    app = shop(first, second, relay=quick(4), relays={"default": quick(1)})
    async with app:
        await app.publish(OrderPlaced(1))
        await app.publish(PageViewed(1))
        attempts = await dead_after(app, 2)
    assert attempts == {"orders": 1, "analytics://views": 4}


async def test_outbox_status_reports_each_transport_with_its_settings_counts_and_loop() -> None:
    first, second = InMemoryTransport(), Refusing()
    analytics = quick(3, batch_size=7)
    app = shop(first, second, relay=quick(2), relays={"analytics": analytics})
    async with app:
        await app.publish(OrderPlaced(1))
        await app.publish(PageViewed(1))
        await app.publish(PageViewed(2))
        before = await outbox_status(app)
        assert [(t.name, t.relay, t.health) for t in before] == [
            ("default", "outbox-relay", None),  # no worker runs in this process yet
            ("analytics", "outbox-relay:analytics", None),
        ]
        assert before[1].settings is analytics
        assert before[0].settings.retry.max_attempts == 2
        assert before[0].counts[OutboxStatus.PENDING] == 1
        assert before[1].counts[OutboxStatus.PENDING] == 2
        assert dict(before[1].destinations["analytics://views"])[OutboxStatus.PENDING] == 2
        await dead_after(app, 2)
        after = await outbox_status(app)
    default, other = after
    assert isinstance(default, TransportStatus)
    assert default.counts[OutboxStatus.DELIVERED] == 1
    assert default.counts[OutboxStatus.DEAD] == 0
    assert other.counts[OutboxStatus.DEAD] == 2
    assert other.counts[OutboxStatus.PENDING] == 0
    assert list(other.destinations) == ["analytics://views"]
    # the worker ran here: each loop's last state, by name
    assert default.health is not None
    assert other.health is not None
    assert (default.health.name, other.health.name) == ("outbox-relay", "outbox-relay:analytics")
    assert {default.health.state, other.health.state} == {ServiceState.STOPPED}


async def test_outbox_status_without_a_relay_names_no_loop() -> None:
    @module(imports=[OutboxModule.register(transport=InMemoryTransport(), run_relay=False)])
    class Consuming: ...

    async with App.build(Consuming) as app:
        [found] = await outbox_status(app)
    assert (found.name, found.relay, found.health) == ("default", None, None)
    assert found.counts == dict.fromkeys(OutboxStatus, 0)


def test_relay_settings_for_a_transport_the_app_does_not_have_fail_the_build() -> None:
    with pytest.raises(ModuleConfigurationError) as caught:
        shop(InMemoryTransport(), InMemoryTransport(), relays={"analytcs": quick(3)})
    [problem] = caught.value.problems
    assert isinstance(problem, UnknownRelayTransportError)
    assert isinstance(problem, UnknownTransportError)  # caught as its kind
    assert str(problem) == (
        "`OutboxModule.register(relays=...)` has relay settings for `analytcs`, but the app "
        "has no transport named `analytcs`; its transports are `default`, `analytics` (the "
        "first one's relay uses `relay=...` unless named here). Hint: key `relays` by one of "
        'those names, or add the transport: `OutboxModule.register(transports={"analytcs": '
        "...}, relays=...)`."
    )


@pytest.fixture
def otel() -> Iterator[Otel]:
    yield from otel_sdk()


async def test_the_backlog_gauge_counts_each_transports_destinations_under_its_name(
    otel: Otel,
) -> None:
    """With several transports each relay loop reads its own destinations' counts:
    ``dockyard.outbox.messages`` has a ``dockyard.outbox.transport`` attribute."""
    first, second = InMemoryTransport(), Refusing()
    app = shop(first, second, relays={"analytics": quick(1)}, telemetry=otel.telemetry)

    def gauge() -> dict[tuple[str, str], int]:
        points = otel.points("dockyard.outbox.messages")
        return {
            (a["dockyard.outbox.transport"], a["dockyard.outbox.status"]): p.value
            for a, p in points
        }

    expected = {("default", "delivered"): 1, ("analytics", "dead"): 3}
    async with app:
        for n in range(3):
            await app.publish(PageViewed(n))
        await app.publish(OrderPlaced(1))

        async def read_as_expected() -> bool:
            return all(gauge().get(k) == v for k, v in expected.items())

        await run_until(app, read_as_expected, f"the gauge reading {expected}")
    read = gauge()
    assert (read["default", "dead"], read["analytics", "delivered"]) == (0, 0)
    assert read["default", "pending"] == read["analytics", "pending"] == 0
