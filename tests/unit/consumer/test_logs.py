"""Log records made while a message is handled or published carry its ids as attributes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from dockyard._logs import FIELDS, log_fields
from dockyard.app import App
from dockyard.consumer import Consumer, ConsumerModule, ErrorPolicies, Outcome, listen, retry_later
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import OutboxMessage, OutboxModule, OutboxRelay, RelaySettings
from dockyard.outbox.memory import InMemoryOutboxBackend, InMemoryOutboxStore
from dockyard.retry import RetryPolicy
from dockyard.transport import CAUSATION_ID, CORRELATION_ID, Delivery, TransportMessage
from dockyard.transport.memory import InMemoryTransport

USER = logging.getLogger("shop.billing")


@dataclass(frozen=True, slots=True)
class Charged(Event):
    order_id: str
    fail: bool = False


class Bill(EventHandler[Charged]):
    async def handle(self, event: Charged, /) -> None:
        USER.info("billing %s", event.order_id)
        if event.fail:
            raise ValueError(event.order_id)


class FakeDelivery(Delivery):
    def __init__(self, message: TransportMessage, attempt: int = 1) -> None:
        self._message, self._attempt = message, attempt

    @property
    def message(self) -> TransportMessage:
        return self._message

    @property
    def attempt(self) -> int:
        return self._attempt

    async def ack(self) -> None: ...

    async def nack(self, *, delay: float = 0.0) -> None: ...


@pytest.fixture
async def consumer() -> AsyncIterator[Consumer]:
    policies = ErrorPolicies(default=retry_later(2, initial_delay=0.0))

    @module(
        handlers=[Bill],
        imports=[
            OutboxModule.register(transport=InMemoryTransport(), backend=InMemoryOutboxBackend()),
            ConsumerModule.register(
                endpoints=[listen("charges", group="billing", policies=policies)]
            ),
        ],
    )
    class Billing: ...

    app = App.build(Billing)
    async with app:
        services = {s.name: s for s in app.background_services()}
        built = await services["consumer:charges:billing"].build()  # type: ignore[attr-defined]
        assert isinstance(built, Consumer)
        yield built


def charged(order_id: str, *, fail: bool = False, type_name: str = "Charged") -> TransportMessage:
    body = json.dumps({"order_id": order_id, "fail": fail}).encode()
    headers = {CORRELATION_ID: "corr-1", CAUSATION_ID: "cause-1"}
    return TransportMessage(f"m-{order_id}", "charges", type_name, body, headers=headers)


def fields(record: logging.LogRecord) -> dict[str, object]:
    return {name: getattr(record, name, None) for name in FIELDS}


def expected(message_id: str, type_name: str = "Charged") -> dict[str, object]:
    return {
        "dockyard_message_id": message_id,
        "dockyard_message_type": type_name,
        "dockyard_correlation_id": "corr-1",
        "dockyard_causation_id": "cause-1",
        "dockyard_destination": "charges",
        "dockyard_service": "consumer:charges:billing",
    }


async def test_a_user_handlers_own_records_carry_the_message_ids(
    consumer: Consumer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="shop.billing")
    assert await consumer.handle(FakeDelivery(charged("o-1"))) is Outcome.HANDLED
    (record,) = [r for r in caplog.records if r.name == "shop.billing"]
    assert fields(record) == expected("m-o-1")
    assert log_fields() == {}  # reset after the message
    USER.info("outside")
    assert fields(caplog.records[-1]) == dict.fromkeys(FIELDS)


async def test_retry_and_dead_letter_records_carry_the_message_ids(
    consumer: Consumer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dockyard.consumer")
    assert await consumer.handle(FakeDelivery(charged("o-2", fail=True))) is Outcome.RETRY
    assert await consumer.handle(FakeDelivery(charged("o-2", fail=True), 2)) is Outcome.DEAD
    assert await consumer.handle(FakeDelivery(charged("o-3", type_name="Nope"))) is Outcome.DEAD
    records = [r for r in caplog.records if r.name == "dockyard.consumer"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.ERROR, logging.ERROR]
    assert [fields(r) for r in records] == [
        expected("m-o-2"),
        expected("m-o-2"),
        expected("m-o-3", "Nope"),
    ]


async def test_a_json_formatter_sees_the_fields(
    consumer: Consumer, caplog: pytest.LogCaptureFixture
) -> None:
    class JsonFormatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return json.dumps(record.__dict__, default=str)

    caplog.set_level(logging.INFO, logger="shop.billing")
    await consumer.handle(FakeDelivery(charged("o-4")))
    (record,) = [r for r in caplog.records if r.name == "shop.billing"]
    line = json.loads(JsonFormatter().format(record))
    assert {name: line[name] for name in FIELDS} == expected("m-o-4")
    assert line["msg"] == "billing %s"


class Refusing(InMemoryTransport):
    async def publish(self, message: TransportMessage, /) -> None:
        raise ConnectionError(f"broker refused {message.message_id}")


async def test_relay_records_carry_the_message_ids(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="dockyard")
    now = time.time()
    store = InMemoryOutboxStore()
    headers = {CORRELATION_ID: "corr-1", CAUSATION_ID: "cause-1"}
    store.append(
        [OutboxMessage("m-1", "charges", "Charged", b"{}", headers=headers, created_at=now)]
    )
    retry = RetryPolicy(max_attempts=2, initial_delay=0.0)
    relay = OutboxRelay(store, Refusing(), RelaySettings(retry=retry), name="relay-1")
    await relay.relay_once()
    await relay.relay_once()
    records = [r for r in caplog.records if r.name == "dockyard.outbox"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.ERROR]
    assert [fields(r) for r in records] == [{**expected("m-1"), "dockyard_service": "relay-1"}] * 2


class OneByOne(InMemoryTransport):
    """No ``publish_many``: the relay publishes each message alone, in its scope."""

    publish_many = None  # type: ignore[assignment]

    async def publish(self, message: TransportMessage, /) -> None:
        logging.getLogger("dockyard.transport").debug("publishing %s", message.message_id)
        await super().publish(message)


async def test_the_transports_records_carry_the_ids_of_the_message_published(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dockyard.transport")
    store = InMemoryOutboxStore()
    headers = {CORRELATION_ID: "corr-1", CAUSATION_ID: "cause-1"}
    now = time.time()
    store.append(
        [OutboxMessage("m-1", "charges", "Charged", b"{}", headers=headers, created_at=now)]
    )
    relay = OutboxRelay(store, OneByOne(), name="relay-1")
    assert (await relay.relay_once()).delivered == 1
    (record,) = [r for r in caplog.records if r.name == "dockyard.transport"]
    assert fields(record) == {**expected("m-1"), "dockyard_service": "relay-1"}
