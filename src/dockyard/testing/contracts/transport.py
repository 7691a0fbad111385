"""``TransportContract``: what every ``Transport`` adapter must do.

Each test uses fresh destination and group names, so a shared broker is fine.

Example:
    ```python
    class TestRabbitTransport(TransportContract):
        @pytest_asyncio.fixture
        async def transport_factory(self) -> AsyncIterator[Transport]:
            transport = RabbitTransport("amqp://guest:guest@localhost/")
            yield transport
            await transport.close()
    ```
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from dockyard.exceptions import TransportClosedError
from dockyard.transport import Delivery, Transport, TransportMessage

__all__ = ["TransportContract"]

RECEIVE_TIMEOUT = 10.0
"""Seconds a test waits for a message that must arrive."""
QUIET_PERIOD = 0.2
"""Seconds a test waits to be sure a message does not arrive."""


def _name(prefix: str) -> str:
    return f"dockyard-contract-{prefix}-{uuid.uuid4().hex[:10]}"


def message(destination: str, key: str | None = None, n: int = 0) -> TransportMessage:
    return TransportMessage(
        message_id=str(uuid.uuid4()),
        destination=destination,
        type_name="contract.Placed",
        payload=b'{"n":%d}' % n,
        schema_version=3,
        headers={"correlation-id": "c-1", "traceparent": "00-abc-def-01"},
        partition_key=key,
    )


async def _next(deliveries: AsyncIterator[Delivery], seconds: float) -> Delivery | None:
    try:
        return await asyncio.wait_for(anext(deliveries), seconds)
    except TimeoutError:
        return None


class TransportContract:
    """Subclass it as ``Test…`` and implement the ``transport_factory`` fixture."""

    @pytest_asyncio.fixture
    async def transport_factory(
        self,
        *_fixtures: Any,
        **_named_fixtures: Any,  # subclasses take the fixtures they need
    ) -> AsyncIterator[Transport]:
        """Abstract: yield a connected transport; close it after the test."""
        raise NotImplementedError(
            f"{type(self).__name__} subclasses TransportContract but does not override the "
            "`transport_factory` fixture. Hint: define it as an async fixture that yields "
            "the transport under test and closes it afterwards."
        )
        yield  # type: ignore[unreachable]  # an async generator, like the overrides

    @pytest.fixture
    def transport(self, transport_factory: Transport) -> Transport:
        return transport_factory

    async def receive(
        self, transport: Transport, destination: str, group: str, count: int
    ) -> list[TransportMessage]:
        """Receive and ack ``count`` messages (failing the test if they do not come)."""
        received: list[TransportMessage] = []
        async with transport.subscribe(destination, group) as subscription:
            deliveries = aiter(subscription)
            while len(received) < count:
                delivery = await _next(deliveries, RECEIVE_TIMEOUT)
                assert delivery is not None, f"got {len(received)} of {count} messages"
                received.append(delivery.message)
                await delivery.ack()
        return received

    async def test_a_message_arrives_intact(self, transport: Transport) -> None:
        destination, group = _name("intact"), _name("group")
        await transport.declare(destination, group)
        sent = message(destination, key="order-1")
        await transport.publish(sent)
        assert await self.receive(transport, destination, group, 1) == [sent]

    async def test_every_group_gets_every_message(self, transport: Transport) -> None:
        destination, billing, shipping = _name("groups"), _name("billing"), _name("shipping")
        await transport.declare(destination, billing)
        await transport.declare(destination, shipping)
        sent = [message(destination, n=n) for n in range(3)]
        for m in sent:
            await transport.publish(m)
        for group in (billing, shipping):
            received = await self.receive(transport, destination, group, 3)
            assert sorted(m.message_id for m in received) == sorted(m.message_id for m in sent)

    async def test_messages_of_one_key_arrive_in_order(self, transport: Transport) -> None:
        destination, group = _name("order"), _name("group")
        await transport.declare(destination, group)
        sent = [message(destination, key=f"k-{n % 2}", n=n) for n in range(10)]
        for m in sent:
            await transport.publish(m)
        received = await self.receive(transport, destination, group, 10)
        for key in ("k-0", "k-1"):
            assert [m.payload for m in received if m.partition_key == key] == [
                m.payload for m in sent if m.partition_key == key
            ]

    async def test_a_rejected_message_comes_back(self, transport: Transport) -> None:
        destination, group = _name("nack"), _name("group")
        await transport.declare(destination, group)
        sent = message(destination, key="k")
        await transport.publish(sent)
        async with transport.subscribe(destination, group) as subscription:
            deliveries = aiter(subscription)
            first = await _next(deliveries, RECEIVE_TIMEOUT)
            assert first is not None
            assert first.attempt == 1
            await first.nack()
            again = await _next(deliveries, RECEIVE_TIMEOUT)
            assert again is not None
            assert (again.message.message_id, again.attempt) == (sent.message_id, 2)
            await again.ack()

    async def test_a_delayed_rejection_waits(self, transport: Transport) -> None:
        destination, group = _name("delay"), _name("group")
        await transport.declare(destination, group)
        await transport.publish(message(destination))
        async with transport.subscribe(destination, group) as subscription:
            deliveries = aiter(subscription)
            first = await _next(deliveries, RECEIVE_TIMEOUT)
            assert first is not None
            await first.nack(delay=QUIET_PERIOD * 3)
            loop = asyncio.get_running_loop()
            started = loop.time()
            again = await _next(deliveries, RECEIVE_TIMEOUT)
            assert again is not None
            assert loop.time() - started >= QUIET_PERIOD * 2
            await again.ack()

    async def test_unacked_messages_go_back_when_a_subscription_closes(
        self, transport: Transport
    ) -> None:
        destination, group = _name("crash"), _name("group")
        await transport.declare(destination, group)
        sent = message(destination)
        await transport.publish(sent)
        async with transport.subscribe(destination, group) as subscription:
            taken = await _next(aiter(subscription), RECEIVE_TIMEOUT)
            assert taken is not None  # and never acked: the consumer "crashes"
        assert [m.message_id for m in await self.receive(transport, destination, group, 1)] == [
            sent.message_id
        ]

    async def test_acked_messages_do_not_come_back(self, transport: Transport) -> None:
        destination, group = _name("ack"), _name("group")
        await transport.declare(destination, group)
        await transport.publish(message(destination))
        await self.receive(transport, destination, group, 1)
        async with transport.subscribe(destination, group) as subscription:
            assert await _next(aiter(subscription), QUIET_PERIOD) is None

    async def test_a_closed_transport_refuses_to_publish(self, transport: Transport) -> None:
        destination = _name("closed")
        await transport.close()
        with pytest.raises(TransportClosedError):
            await transport.publish(message(destination))
