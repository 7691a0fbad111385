"""Messages that arrive without dockyard's ``message-id`` header, on the real brokers.

The inbox deduplicates on the message id, so an id made up on arrival would make a
redelivery look new. A transport uses an id the broker keeps across redeliveries (RabbitMQ's
``message_id`` property, a JetStream stream position, a Redis stream entry id); with none, the
message is marked ``NO_MESSAGE_ID`` and consumers dead-letter it (tests/unit/consumer; on
these brokers it does not happen: aiormq gives every AMQP message a ``message_id`` property when
its sender set none, and stream positions always exist). And a Kafka record whose headers are
not UTF-8 text is handed out, not skipped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from faststream.rabbit import ExchangeType, RabbitExchange

from dockyard.exceptions import ConsumerGroupConflictError
from dockyard.transport import NO_MESSAGE_ID, Delivery, Transport
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport
from dockyard.transport.redis import RedisTransport
from integration._apps.services import delete_declared

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/"
NATS_URL = "nats://127.0.0.1:4222"
REDIS_URL = "redis://127.0.0.1:6379"
FOREIGN = {"message-type": "PaymentRequested"}  # typed, but no `message-id`


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _next(deliveries: AsyncIterator[Delivery]) -> Delivery:
    return await asyncio.wait_for(anext(deliveries), 30)


async def _first_then_redelivered(
    transport: Transport, destination: str, group: str
) -> tuple[Delivery, Delivery]:
    """The first delivery, given back, and the same message delivered again."""
    async with transport.subscribe(destination, group) as subscription:
        deliveries = aiter(subscription)
        first = await _next(deliveries)
        await first.nack()
        again = await _next(deliveries)
        await again.ack()
        return first, again


@pytest_asyncio.fixture
async def rabbit() -> AsyncIterator[RabbitTransport]:
    transport = RabbitTransport(RABBIT_URL)
    yield transport
    await transport.close()
    await delete_declared(transport)


@pytest.mark.rabbit
async def test_rabbit_uses_the_amqp_message_id_property(rabbit: RabbitTransport) -> None:
    destination, group = _name("foreign"), "billing"
    await rabbit.declare(destination, group)
    exchange = RabbitExchange(destination, type=ExchangeType.FANOUT, durable=True)
    await rabbit.broker.publish(b"{}", exchange=exchange, headers=FOREIGN, message_id="amqp-7")
    first, again = await _first_then_redelivered(rabbit, destination, group)
    assert first.message.message_id == again.message.message_id == "amqp-7"
    assert NO_MESSAGE_ID not in again.message.headers
    assert again.message.type_name == "PaymentRequested"


@pytest.mark.nats
async def test_nats_uses_the_stream_position() -> None:
    transport = NatsTransport(NATS_URL)
    destination, group = _name("foreign"), "billing"
    try:
        await transport.declare(destination, group)
        subject = transport.name_of(destination)
        stream = NatsTransport.stream_name(subject)
        await transport.broker.publish(b"{}", subject, headers=FOREIGN, stream=stream)
        first, again = await _first_then_redelivered(transport, destination, group)
        assert first.message.message_id == again.message.message_id == f"{stream}:1"
        assert again.attempt == 2
        assert NO_MESSAGE_ID not in again.message.headers
    finally:
        await transport.close()
        await delete_declared(transport)


@pytest.mark.redis
async def test_redis_uses_the_stream_entry_id() -> None:
    transport = RedisTransport(REDIS_URL)
    destination, group = _name("foreign"), "billing"
    try:
        await transport.declare(destination, group)
        name = transport.name_of(destination)
        entry = await transport.broker.publish(b"{}", stream=name, headers=FOREIGN)
        first, again = await _first_then_redelivered(transport, destination, group)
        expected = f"{name}:{entry.decode() if isinstance(entry, bytes) else entry}"
        assert first.message.message_id == again.message.message_id == expected
        assert NO_MESSAGE_ID not in again.message.headers
    finally:
        await transport.close()
        await delete_declared(transport)


@pytest.mark.nats
async def test_nats_refuses_a_group_declared_with_other_settings() -> None:
    first = NatsTransport(NATS_URL, ack_wait=30)
    second = NatsTransport(NATS_URL, ack_wait=60)
    same = NatsTransport(NATS_URL, ack_wait=30)
    destination, group = _name("settings"), "billing"
    try:
        await first.declare(destination, group)
        await same.declare(destination, group)  # the same settings: nothing to say
        with pytest.raises(ConsumerGroupConflictError) as caught:
            await second.declare(destination, group)
        stream = NatsTransport.stream_name(destination)
        assert str(caught.value) == (
            f"The nats consumer group `billing` of `{destination}` exists with ack_wait=30s, "
            "max_ack_pending=1; this transport declares ack_wait=60s, max_ack_pending=1. The "
            "broker keeps the settings of the group's first declaration. Hint: give every app "
            "of the group the same settings, or delete the consumer "
            f"(`nats consumer rm {stream} billing`) to create it again with the new ones."
        )
    finally:
        for transport in (first, second, same):
            await transport.close()
        await delete_declared(first)


@pytest.mark.kafka
async def test_a_kafka_record_with_a_binary_header_is_handed_out_not_skipped() -> None:
    """Kafka header values are bytes; FastStream decodes them as UTF-8, and a record with one
    that is not (a foreign producer's binary header) was never handed out, then lost once a
    later record of the partition was committed. It arrives, its bad bytes escaped: a garbled
    ``message-type`` makes it a dead letter with the reason; other headers travel on."""
    from aiokafka import AIOKafkaProducer

    from dockyard.app import App
    from dockyard.consumer import ConsumerModule, listen
    from dockyard.messaging import Event, EventHandler
    from dockyard.modules import module
    from dockyard.outbox import DeadLetters, OutboxModule
    from dockyard.outbox.memory import InMemoryOutboxBackend
    from dockyard.serialization import event_type
    from dockyard.transport.kafka import KafkaTransport
    from integration._apps.services import KAFKA_SERVERS

    handled: list[str] = []

    @event_type("parcel-sent")
    @dataclass(frozen=True)
    class ParcelSent(Event):
        parcel: str

    class Track(EventHandler[ParcelSent]):
        async def handle(self, event: ParcelSent, /) -> None:
            handled.append(event.parcel)

    transport = KafkaTransport(KAFKA_SERVERS, idempotent=False, session_timeout=3.0)
    destination = _name("foreign")

    @module(
        handlers=[Track],
        imports=[
            OutboxModule.register(
                transport=transport, backend=InMemoryOutboxBackend(), run_relay=False
            ),
            ConsumerModule.register(endpoints=[listen(destination, group=_name("tracking"))]),
        ],
    )
    class Tracking: ...

    producer = AIOKafkaProducer(bootstrap_servers=KAFKA_SERVERS)
    await producer.start()
    try:
        sent = [
            [("message-id", b"k-1"), ("message-type", b"parcel-\xff")],
            [("message-id", b"k-2"), ("message-type", b"parcel-sent"), ("trace", b"\x00\xfe")],
        ]
        for n, headers in enumerate(sent, 1):
            value = f'{{"parcel": "p-{n}"}}'.encode()
            await producer.send_and_wait(transport.name_of(destination), value, headers=headers)
    finally:
        await producer.stop()

    app, stop = App.build(Tracking), asyncio.Event()
    try:
        async with app:
            worker = asyncio.create_task(app.run_worker(stop=stop, grace=10))
            dead_letters = await app.get(DeadLetters)
            async with asyncio.timeout(120):  # a Kafka group joins after its session timeout
                while not handled or not await dead_letters.list():  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            stop.set()
            await worker
            [letter] = await dead_letters.list()
    finally:
        stop.set()
        await transport.close()
        await delete_declared(transport)
    assert handled == ["p-2"]
    assert letter.message_id == "k-1"
    assert "unknown message type `parcel-\\xff`" in (letter.last_error or "")
