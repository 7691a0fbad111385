"""``BacklogReader.backlog``: a consumer group's unacknowledged messages as each real broker
counts them (the ``dockyard.consumer.lag`` gauge reads it)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from dockyard.transport import BacklogReader, Transport, TransportMessage
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport
from dockyard.transport.redis import RedisTransport
from integration._apps.services import delete_declared

BROKERS = [
    pytest.param("rabbit", marks=pytest.mark.rabbit),
    pytest.param("nats", marks=pytest.mark.nats),
    pytest.param("redis", marks=pytest.mark.redis),
]


def transport_for(broker: str) -> Transport:
    if broker == "rabbit":
        return RabbitTransport("amqp://guest:guest@127.0.0.1:5672/")
    if broker == "nats":
        return NatsTransport("nats://127.0.0.1:4222")
    return RedisTransport("redis://127.0.0.1:6379")


@pytest.mark.parametrize("broker", BROKERS)
async def test_the_backlog_counts_what_the_group_has_not_acknowledged(broker: str) -> None:
    transport = transport_for(broker)
    assert isinstance(transport, BacklogReader)
    destination = f"backlog-{uuid.uuid4().hex[:8]}"
    try:
        await transport.declare(destination, "billing")
        for n in range(3):
            await transport.publish(TransportMessage(f"m-{n}", destination, "T", b"{}"))
        # RabbitMQ counts a message once its queue has it: give the broker a moment.
        async with asyncio.timeout(30):
            while await transport.backlog(destination, "billing") != 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        async with transport.subscribe(destination, "billing") as subscription:
            deliveries = aiter(subscription)
            for _ in range(3):
                delivery = await asyncio.wait_for(anext(deliveries), 30)
                await delivery.ack()
        async with asyncio.timeout(30):
            while await transport.backlog(destination, "billing") != 0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert await transport.backlog(destination, "nobody") is None
    finally:
        await transport.close()
        await delete_declared(transport)
