"""Consumers: error policies per handler and exception type, malformed messages, concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from dockyard.app import App
from dockyard.consumer import (
    Consumer,
    ConsumerModule,
    ErrorPolicies,
    Outcome,
    discard,
    listen,
    on_error,
    retry_inline,
    retry_later,
)
from dockyard.exceptions import MissingProviderError, ModuleConfigurationError
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import DeadLetters, OutboxModule
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.transport import NO_MESSAGE_ID, Delivery, TransportMessage
from dockyard.transport._faststream import decode_headers
from dockyard.transport.memory import InMemoryTransport


@dataclass(frozen=True, slots=True)
class PaymentRequested(Event):
    order_id: str
    fail_with: str = ""


class CardDeclined(Exception): ...


class GatewayDown(Exception): ...


CALLS: list[str] = []


@on_error(CardDeclined, policy=discard())
@on_error(GatewayDown, policy=retry_inline(2, then=retry_later(3, initial_delay=0.0)))
class ChargeCard(EventHandler[PaymentRequested]):
    failures_left = 0

    async def handle(self, event: PaymentRequested, /) -> None:
        CALLS.append(event.order_id)
        if event.fail_with and ChargeCard.failures_left > 0:
            ChargeCard.failures_left -= 1
            raise {"declined": CardDeclined, "down": GatewayDown, "bug": KeyError}[event.fail_with](
                event.order_id
            )


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
        self.outcome = "nack"


@pytest.fixture
async def app() -> AsyncIterator[App]:
    CALLS.clear()
    ChargeCard.failures_left = 0
    policies = ErrorPolicies(default=retry_later(2, initial_delay=0.0))

    @module(
        handlers=[ChargeCard],
        imports=[
            OutboxModule.register(transport=InMemoryTransport(), backend=InMemoryOutboxBackend()),
            ConsumerModule.register(
                endpoints=[listen("payments", group="billing", concurrency=4, policies=policies)]
            ),
        ],
    )
    class Payments: ...

    built = App.build(Payments)
    async with built:
        yield built


async def consumer_of(app: App) -> Consumer:
    services = {s.name: s for s in app.background_services()}
    assert sorted(services) == ["consumer:payments:billing", "outbox-relay"]
    service = services["consumer:payments:billing"]
    built = await service.build()  # type: ignore[attr-defined]
    assert isinstance(built, Consumer)
    return built


def payment(order_id: str, fail_with: str = "", message_id: str = "") -> TransportMessage:
    body = b'{"order_id":"%s","fail_with":"%s"}' % (order_id.encode(), fail_with.encode())
    return TransportMessage(message_id or f"m-{order_id}", "payments", "PaymentRequested", body)


async def dead_reasons(app: App) -> dict[str, str]:
    letters = await (await app.get(DeadLetters)).list()
    return {letter.message_id: letter.last_error or "" for letter in letters}


async def test_a_handler_policy_discards_its_exception_type(app: App) -> None:
    consumer = await consumer_of(app)
    ChargeCard.failures_left = 1
    delivery = FakeDelivery(payment("o-1", "declined"))
    assert await consumer.handle(delivery) is Outcome.DISCARDED
    assert (delivery.outcome, CALLS, await dead_reasons(app)) == ("ack", ["o-1"], {})


async def test_inline_retries_run_before_a_later_retry(app: App) -> None:
    consumer = await consumer_of(app)
    ChargeCard.failures_left = 2  # two inline retries are enough
    delivery = FakeDelivery(payment("o-2", "down"))
    assert await consumer.handle(delivery) is Outcome.HANDLED
    assert (delivery.outcome, CALLS) == ("ack", ["o-2"] * 3)

    ChargeCard.failures_left = 3  # inline retries run out: redelivered later
    delivery = FakeDelivery(payment("o-3", "down"))
    assert await consumer.handle(delivery) is Outcome.RETRY
    assert delivery.outcome == "nack"


async def test_retries_later_then_dead_letters_after_max_attempts(app: App) -> None:
    consumer = await consumer_of(app)
    ChargeCard.failures_left = 100
    message = payment("o-4", "down")
    assert await consumer.handle(FakeDelivery(message, attempt=2)) is Outcome.RETRY
    assert await consumer.handle(FakeDelivery(message, attempt=3)) is Outcome.DEAD
    assert await dead_reasons(app) == {"m-o-4": "consumer:payments:billing: GatewayDown: o-4"}


async def test_other_errors_follow_the_endpoint_default(app: App) -> None:
    consumer = await consumer_of(app)
    ChargeCard.failures_left = 100
    message = payment("o-5", "bug")
    assert await consumer.handle(FakeDelivery(message, attempt=1)) is Outcome.RETRY
    assert await consumer.handle(FakeDelivery(message, attempt=2)) is Outcome.DEAD
    assert CALLS == ["o-5", "o-5"]  # no inline retry for them


def test_safe_defaults_retry_transient_errors_longer() -> None:
    policies = ErrorPolicies()
    transient = policies.for_error(ConnectionResetError())
    poison = policies.for_error(KeyError("x"))
    assert transient.inline_retries == 2
    assert transient.retry_later is not None
    assert transient.retry_later.max_attempts == 10
    assert poison.inline_retries == 0
    assert poison.retry_later is not None
    assert poison.retry_later.max_attempts == 5
    assert policies.with_policy(KeyError, discard()).for_error(KeyError()) == discard()


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (TransportMessage("bad-1", "payments", "", b"{}"), "it has no `message-type` header"),
        (
            TransportMessage("bad-2", "payments", "PaymentRequested", b"{}", schema_version=0),
            "its `schema-version` header is not a positive number",
        ),
        (
            TransportMessage("bad-3", "payments", "PaymentRequested", b"x" * (10 * 1024 * 1024)),
            "its payload of 10,485,760 bytes is over the endpoint's max_payload (4,194,304)",
        ),
        (
            TransportMessage("bad-4", "payments", "Refunded", b"{}"),
            "unknown message type `Refunded`: no handler of this app takes it",
        ),
        (
            TransportMessage("bad-5", "payments", "PaymentRequested", b"{not json"),
            "the payload of `PaymentRequested` (schema version 1) cannot be decoded: ",
        ),
        (
            TransportMessage("bad-6", "payments", "PaymentRequested", b"{}", schema_version=7),
            (
                "`PaymentRequested` was sent at schema version 7, newer than this app's "
                "version 1. Hint: deploy the version that sends it to this consumer's app too"
            ),
        ),
    ],
)
async def test_malformed_messages_become_dead_letters_with_the_reason(
    app: App, message: TransportMessage, reason: str
) -> None:
    consumer = await consumer_of(app)
    delivery = FakeDelivery(message)
    assert await consumer.handle(delivery) is Outcome.DEAD
    assert delivery.outcome == "ack"
    recorded = (await dead_reasons(app))[message.message_id]
    assert reason in recorded
    # A consumer's words, not the event store's (no stored rows or stream positions here).
    assert "Stored event" not in recorded
    assert "repair the row" not in recorded
    assert "skip_unknown" not in recorded
    assert await consumer.handle(FakeDelivery(payment("after"))) is Outcome.HANDLED


async def test_the_consumer_handles_up_to_its_concurrency_at_once_and_dedupes(app: App) -> None:
    transport = InMemoryTransport()
    consumer = await consumer_of(app)
    consumer.transport = transport
    running, peak = 0, 0
    release = asyncio.Event()
    original = ChargeCard.handle

    async def slow(self: ChargeCard, event: PaymentRequested, /) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        await original(self, event)

    ChargeCard.handle = slow  # type: ignore[method-assign]
    try:
        await transport.declare("payments", "billing")
        for n in range(8):
            await transport.publish(payment(f"c-{n}"))
        await transport.publish(payment("c-0"))  # a duplicate (same message id)
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if peak == 4:
                break
        release.set()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if transport.pending("payments", "billing") == 0 and running == 0:
                break
        stop.set()
        await asyncio.wait_for(task, 5)
    finally:
        ChargeCard.handle = original  # type: ignore[method-assign]
    assert peak == 4
    assert sorted(CALLS) == sorted(f"c-{n}" for n in range(8))


def test_endpoints_are_checked() -> None:
    with pytest.raises(ValueError, match=r"listen\(\) needs a destination and a group"):
        listen("payments", group="")
    with pytest.raises(ValueError, match=r"Endpoint\.concurrency and max_payload must be >= 1"):
        listen("payments", group="billing", concurrency=0)
    with pytest.raises(ValueError, match="lists an endpoint twice: consumer:payments:billing"):
        ConsumerModule.register(
            endpoints=[listen("payments", group="billing"), listen("payments", group="billing")]
        )


def test_an_app_with_consumers_but_no_outbox_module_does_not_build() -> None:
    @module(imports=[ConsumerModule.register(endpoints=[listen("payments", group="billing")])])
    class Payments: ...

    with pytest.raises(ModuleConfigurationError) as caught:
        App.build(Payments)
    assert [type(p) for p in caught.value.problems] == [MissingProviderError] * 3
    assert "Module `ConsumerModule` needs `OutboxStore` (for `OutboxParts`)" in str(caught.value)


async def test_a_message_without_an_id_is_a_dead_letter_that_replays_under_its_own_id(
    app: App,
) -> None:
    # What a broker transport hands out when neither the sender nor the broker gave an id.
    message = decode_headers("payments", {"message-type": "PaymentRequested"}, b"{}", None)
    assert message.message_id.startswith("unidentified-")
    assert message.headers == {NO_MESSAGE_ID: "1"}
    consumer = await consumer_of(app)
    assert await consumer.handle(FakeDelivery(message)) is Outcome.DEAD
    reason = (await dead_reasons(app))[message.message_id]
    assert "it has no message id (no `message-id` header, and the broker keeps none" in reason
    assert CALLS == []
    # The dead letter keeps the made-up id, without the mark: replayed, it is an ordinary
    # message with a `message-id` header, which the consumer handles.
    letter = (await (await app.get(DeadLetters)).list())[0]
    assert NO_MESSAGE_ID not in letter.headers
    # A sender cannot set the mark itself.
    sent = decode_headers(
        "payments", {"message-id": "m-1", "message-type": "T", NO_MESSAGE_ID: "1"}, b"{}", None
    )
    assert (sent.message_id, sent.headers) == ("m-1", {})


async def test_a_cancelled_consumer_leaves_no_receiver_behind_to_take_a_message(app: App) -> None:
    transport = InMemoryTransport()
    await transport.declare("payments", "billing")
    consumer = await consumer_of(app)
    consumer.transport = transport
    before = asyncio.all_tasks()
    task = asyncio.create_task(consumer.run(asyncio.Event()))
    for _ in range(5):  # subscribed, and waiting for a delivery
        await asyncio.sleep(0)
    task.cancel()  # a forced stop
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() - before == set()
    await transport.publish(payment("after"))  # stays for the next consumer, untouched
    assert transport.pending("payments", "billing") == 1
    stop = asyncio.Event()
    again = asyncio.create_task(consumer.run(stop))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if CALLS:
            break
    stop.set()
    await asyncio.wait_for(again, 5)
    assert CALLS == ["after"]
