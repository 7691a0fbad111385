"""``TransportContract``: what every ``Transport`` adapter must do.

Each test uses fresh destination and group names, so a shared broker is fine. The
``publish_many`` tests run when the transport has it (``BatchPublisher``); they need the
``refusing_destination`` hook: a destination the transport under test refuses messages to.

Example:
    ```python
    class TestRabbitTransport(TransportContract):
        @pytest_asyncio.fixture
        async def transport_factory(self) -> AsyncIterator[Transport]:
            transport = RabbitTransport("amqp://guest:guest@localhost/")
            yield transport
            await transport.close()

        async def refusing_destination(self, transport: Transport) -> str:
            return f"undeclared-{uuid.uuid4().hex}"  # RabbitMQ refuses unroutable messages
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
from dockyard.transport import (
    BatchPublisher,
    BatchPublishError,
    Delivery,
    Transport,
    TransportMessage,
)

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

    async def refusing_destination(self, transport: Transport) -> str:
        """Abstract: a fresh destination ``transport`` refuses every message to.

        However the broker says no: RabbitMQ refuses a destination no group declared, a
        JetStream stream can cap the message size, Redis cannot append to a key that is not
        a stream. Only the ``publish_many`` tests use it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} tests a transport with `publish_many` but does not "
            "override `refusing_destination`. Hint: return a destination the transport's "
            "broker refuses messages to, so the contract can check how failures are reported."
        )

    def batch_publisher(self, transport: Transport) -> BatchPublisher:
        if not isinstance(transport, BatchPublisher):
            pytest.skip(f"{type(transport).__name__} has no publish_many (it is optional)")
        return transport

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
        if isinstance(transport, BatchPublisher):
            with pytest.raises(TransportClosedError):
                await transport.publish_many([message(destination)])

    async def test_publish_many_delivers_every_message_in_key_order(
        self, transport: Transport
    ) -> None:
        batch = self.batch_publisher(transport)
        destination, group = _name("many"), _name("group")
        await transport.declare(destination, group)
        keys = ["k-0", "k-1", None, "k-0", "k-2", "k-0", None, "k-1"] * 4
        sent = [message(destination, key=key, n=n) for n, key in enumerate(keys)]
        await batch.publish_many(sent)
        received = await self.receive(transport, destination, group, len(sent))
        assert sorted(m.message_id for m in received) == sorted(m.message_id for m in sent)
        for key in ("k-0", "k-1", "k-2"):
            assert [m.payload for m in received if m.partition_key == key] == [
                m.payload for m in sent if m.partition_key == key
            ]
        assert received[0] in sent  # intact: headers, type and schema version survive

    async def test_publish_many_reports_failures_and_holds_back_their_keys(
        self, transport: Transport
    ) -> None:
        batch = self.batch_publisher(transport)
        destination, group = _name("partial"), _name("group")
        await transport.declare(destination, group)
        refusing = await self.refusing_destination(transport)
        a1, b1 = message(destination, "a", 1), message(refusing, "b", 2)
        b2, c1 = message(destination, "b", 3), message(destination, "c", 4)
        loose, a2 = message(refusing, None, 5), message(destination, "a", 6)
        with pytest.raises(BatchPublishError) as raised:
            await batch.publish_many([a1, b1, b2, c1, loose, a2])
        assert sorted(raised.value.failed) == sorted([b1.message_id, loose.message_id])
        assert raised.value.held_back == (b2.message_id,)  # behind b1, so never published
        received = await self.receive(transport, destination, group, 3)
        assert sorted(m.message_id for m in received) == sorted(m.message_id for m in (a1, c1, a2))
        assert [m.message_id for m in received if m.partition_key == "a"] == [
            a1.message_id,
            a2.message_id,
        ]
        async with transport.subscribe(destination, group) as subscription:
            assert await _next(aiter(subscription), QUIET_PERIOD) is None  # not b2
