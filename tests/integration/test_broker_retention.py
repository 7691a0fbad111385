"""What a broker keeps once every consumer group has acknowledged a message: nothing.

RabbitMQ drops a message once each of its queues has had it acknowledged. A NATS stream
created with JetStream's defaults and a Redis stream keep every message for ever, so a busy
destination grows until the disk or the memory is full; dockyard's NATS streams keep a
message while a group still needs it (interest retention) and its Redis subscriptions trim
what every group has acknowledged.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as redis

from dockyard.transport import TransportMessage
from dockyard.transport.nats import NatsTransport
from dockyard.transport.redis import RedisTransport
from integration._apps.services import NATS_URL, REDIS_URL, delete_declared


async def _take(
    transport: NatsTransport | RedisTransport, destination: str, group: str, n: int
) -> None:
    async with transport.subscribe(destination, group) as subscription:
        deliveries = aiter(subscription)
        for _ in range(n):
            delivery = await asyncio.wait_for(anext(deliveries), 30)
            await delivery.ack()


async def _publish(transport: NatsTransport | RedisTransport, destination: str, n: int) -> None:
    for i in range(n):
        await transport.publish(TransportMessage(f"m-{i}", destination, "T", b"{}"))


async def _until(count: Callable[[], Awaitable[int]], expected: int, what: str) -> None:
    async with asyncio.timeout(30):
        while (got := await count()) != expected:  # noqa: ASYNC110 - the broker's count
            await asyncio.sleep(0.05)
    assert got == expected, what


@pytest.mark.nats
async def test_a_nats_stream_keeps_a_message_until_every_group_has_acknowledged_it() -> None:
    transport = NatsTransport(NATS_URL)
    destination = f"kept-{uuid.uuid4().hex[:8]}"
    stream = NatsTransport.stream_name(destination)
    try:
        for group in ("billing", "shipping"):
            await transport.declare(destination, group)
        await _publish(transport, destination, 10)
        js = transport.broker.connection.jetstream()

        async def stored() -> int:
            return int((await js.stream_info(stream)).state.messages)

        assert await stored() == 10
        await _take(transport, destination, "billing", 10)
        assert await stored() == 10  # shipping has not had them
        await _take(transport, destination, "shipping", 4)
        await _until(stored, 6, "the four both groups acknowledged are gone")
        await _take(transport, destination, "shipping", 6)
        await _until(stored, 0, "nothing is kept once every group has acknowledged")
    finally:
        await transport.close()
        await delete_declared(transport)


@pytest.mark.nats
async def test_a_nats_stream_can_keep_everything() -> None:
    transport = NatsTransport(NATS_URL, retention="limits")
    destination = f"kept-{uuid.uuid4().hex[:8]}"
    try:
        await transport.declare(destination, "billing")
        await _publish(transport, destination, 3)
        await _take(transport, destination, "billing", 3)
        info = await transport.broker.connection.jetstream().stream_info(
            NatsTransport.stream_name(destination)
        )
        assert info.state.messages == 3
    finally:
        await transport.close()
        await delete_declared(transport)
    with pytest.raises(ValueError, match="retention must be 'interest' or 'limits'"):
        NatsTransport(NATS_URL, retention="work-queue")  # type: ignore[arg-type]


@pytest.mark.nats
async def test_a_nats_stream_that_keeps_everything_is_named_in_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stream made before dockyard asked for interest retention (or by hand) keeps its
    retention: the transport says so once, unless it was told to keep everything too."""
    destination = f"kept-{uuid.uuid4().hex[:8]}"
    stream = NatsTransport.stream_name(destination)
    transports = [NatsTransport(NATS_URL, retention="limits") for _ in range(2)]
    transports.append(NatsTransport(NATS_URL))
    try:
        for transport in transports:
            await transport.declare(destination, "billing")
        await transports[2].publish(TransportMessage("m-1", destination, "T", b"{}"))
        warnings = [r.getMessage() for r in caplog.records if r.name == "dockyard.transport"]
        expected = (
            f"NATS stream {stream!r} keeps every message for ever (limits retention, no limit "
            f"set): give it limits (`nats stream edit {stream} --max-age 7d`), or recreate it "
            "once drained for dockyard to create it with interest retention; "
            "NatsTransport(retention='limits') says this is meant"
        )
        assert warnings == [expected]
    finally:
        for transport in transports:
            await transport.close()
        await delete_declared(*transports)


@pytest.mark.redis
async def test_redis_subscriptions_trim_what_every_group_has_acknowledged() -> None:
    transport = RedisTransport(REDIS_URL, poll_interval=0.05, trim_interval=0.1)
    destination = f"kept-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for group in ("billing", "shipping"):
            await transport.declare(destination, group)
        await _publish(transport, destination, 10)
        name = transport.name_of(destination)

        async def stored() -> int:
            return int(await client.xlen(name))

        await _take(transport, destination, "billing", 10)
        await asyncio.sleep(0.3)  # past a trim: shipping has had none of them
        assert await stored() == 10
        await _take(transport, destination, "shipping", 4)
        await _until(stored, 6, "the four both groups acknowledged are trimmed")
        await _take(transport, destination, "shipping", 6)
        await _until(stored, 0, "nothing is kept once every group has acknowledged")
    finally:
        await client.aclose()
        await transport.close()
        await delete_declared(transport)


@pytest.mark.redis
async def test_a_pending_entry_is_not_trimmed_and_trimming_can_be_left_to_the_user() -> None:
    """An entry handed out and not acknowledged (its consumer may have died) is still needed:
    nothing from it on is trimmed. With ``trim_interval=None`` subscriptions never trim and
    ``trim()`` does it on demand."""
    transport = RedisTransport(REDIS_URL, poll_interval=0.05, trim_interval=None)
    destination = f"kept-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        await transport.declare(destination, "billing")
        await _publish(transport, destination, 5)
        name = transport.name_of(destination)
        await _take(transport, destination, "billing", 2)
        async with transport.subscribe(destination, "billing") as subscription:
            await asyncio.wait_for(anext(aiter(subscription)), 30)  # the third: not acked
        assert await client.xlen(name) == 5  # no trimming of its own
        assert await transport.trim(name) == 2
        assert await client.xlen(name) == 3  # the pending third and the two after it
    finally:
        await client.aclose()
        await transport.close()
        await delete_declared(transport)
