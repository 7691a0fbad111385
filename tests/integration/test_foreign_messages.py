"""Messages that arrive without dockyard's ``message-id`` header, on the real brokers.

The inbox deduplicates on the message id, so an id made up on arrival would make a
redelivery look new. A transport uses an id the broker keeps across redeliveries (RabbitMQ's
``message_id`` property, a JetStream stream position, a Redis stream entry id); with none, the
message is marked ``NO_MESSAGE_ID`` and consumers dead-letter it (tests/unit/consumer; on
these brokers it does not happen: aiormq gives every AMQP message a ``message_id`` property when
its sender set none, and stream positions always exist).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

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
