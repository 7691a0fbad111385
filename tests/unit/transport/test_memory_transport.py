"""``InMemoryTransport``: the transport contract, plus what only memory can promise."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from dockyard.exceptions import TransportUnavailableError
from dockyard.testing.contracts import TransportContract
from dockyard.transport import Transport, TransportMessage
from dockyard.transport.memory import InMemoryTransport


class RefusingTransport(InMemoryTransport):
    """Refuses destinations named ``refused-…``, as a broker refuses an unroutable message."""

    async def publish(self, message: TransportMessage, /) -> None:
        if message.destination.startswith("refused-"):
            raise ConnectionError(f"{message.destination} refuses messages")
        await super().publish(message)


class TestInMemoryTransport(TransportContract):
    @pytest_asyncio.fixture
    async def transport_factory(self) -> AsyncIterator[Transport]:
        transport = RefusingTransport()
        yield transport
        await transport.close()

    async def refusing_destination(self, transport: Transport) -> str:
        del transport
        return f"refused-{uuid.uuid4().hex[:8]}"


def msg(n: int, key: str | None) -> TransportMessage:
    return TransportMessage(f"m-{n}", "orders", "Placed", b"%d" % n, partition_key=key)


async def test_a_key_waits_for_its_unacked_message_while_others_flow() -> None:
    transport = InMemoryTransport()
    for n, key in enumerate(["a", "a", "b", None]):
        await transport.publish(msg(n, key))
    async with transport.subscribe("orders", "billing", prefetch=10) as subscription:
        deliveries = aiter(subscription)
        first = await anext(deliveries)
        others = [await anext(deliveries), await anext(deliveries)]
        assert [first.message.message_id] + [d.message.message_id for d in others] == [
            "m-0",
            "m-2",
            "m-3",
        ]
        late = asyncio.ensure_future(anext(deliveries))
        await asyncio.sleep(0.05)
        assert not late.done()  # m-1 waits behind m-0, its key's unacked message
        await first.ack()
        assert (await asyncio.wait_for(late, 1)).message.message_id == "m-1"


async def test_a_rejected_message_keeps_its_place_before_later_ones_of_its_key() -> None:
    transport = InMemoryTransport()
    for n in range(3):
        await transport.publish(msg(n, "k"))
    seen: list[str] = []
    async with transport.subscribe("orders", "billing") as subscription:
        async for delivery in subscription:
            seen.append(f"{delivery.message.message_id}#{delivery.attempt}")
            if delivery.message.message_id == "m-1" and delivery.attempt == 1:
                await delivery.nack(delay=0.05)
            else:
                await delivery.ack()
            if len(seen) == 4:
                break
    assert seen == ["m-0#1", "m-1#1", "m-1#2", "m-2#1"]
    assert transport.pending("orders", "billing") == 0


async def test_messages_published_before_any_group_wait_for_the_first_one() -> None:
    transport = InMemoryTransport()
    await transport.publish(msg(1, None))
    assert transport.pending("orders", "billing") == 1
    async with transport.subscribe("orders", "billing") as subscription:
        delivery = await anext(aiter(subscription))
        await delivery.ack()
    assert delivery.message.message_id == "m-1"
    assert transport.published == 1


async def test_offline_it_refuses_publishes_as_unavailable_and_delivers_nothing() -> None:
    transport = InMemoryTransport()
    await transport.declare("orders", "billing")
    await transport.publish(msg(0, None))
    transport.go_offline()
    assert not transport.online
    with pytest.raises(TransportUnavailableError, match="in-memory broker is unavailable"):
        await transport.publish(msg(1, None))
    with pytest.raises(TransportUnavailableError):
        await transport.publish_many([msg(2, None)])
    async with transport.subscribe("orders", "billing") as subscription:
        receiving = asyncio.ensure_future(anext(aiter(subscription)))
        done, _ = await asyncio.wait({receiving}, timeout=0.05)
        assert not done  # m-0 waits while the broker is unreachable
        transport.go_online()
        delivery = await asyncio.wait_for(receiving, 5)
        await delivery.ack()
    assert delivery.message.message_id == "m-0"
    assert transport.pending("orders", "billing") == 0  # m-1 and m-2 were never stored
