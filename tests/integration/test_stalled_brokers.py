"""A broker that falls silent after the connection is made: every call is bounded.

``test_silent_brokers`` bounds connecting. Here the transport is connected through a
``FaultProxy`` the test owns, to the real broker (RabbitMQ, NATS, Redis); then the proxy
stalls (holds every byte, as a wedged node or a hung network does) and each operation that
talks to the broker must give up with ``TransportUnavailableError`` (``backlog``: ``None``,
"not known") within the transport's bound instead of waiting for ever; once the proxy
forwards again the transport works.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from dockyard.exceptions import BatchPublishError, TransportUnavailableError
from dockyard.transport import TransportMessage
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport
from dockyard.transport.redis import RedisTransport
from faults import FaultProxy
from integration._apps.services import delete_declared

BOUND = 1.0
"""The transports' connect and publish timeouts in these tests."""
_WAIT = 60.0
"""Generous: a bound that works ends in ``BOUND``; a hang ends the test here."""


def rabbit(port: int) -> RabbitTransport:
    return RabbitTransport(
        f"amqp://guest:guest@127.0.0.1:{port}/", connect_timeout=BOUND, publish_timeout=BOUND
    )


def nats(port: int) -> NatsTransport:
    return NatsTransport(f"nats://127.0.0.1:{port}", connect_timeout=BOUND, publish_timeout=BOUND)


def redis(port: int) -> RedisTransport:
    return RedisTransport(f"redis://127.0.0.1:{port}", connect_timeout=BOUND, publish_timeout=BOUND)


BROKERS = [
    pytest.param(rabbit, 5672, id="rabbit", marks=pytest.mark.rabbit),
    pytest.param(nats, 4222, id="nats", marks=pytest.mark.nats),
    pytest.param(redis, 6379, id="redis", marks=pytest.mark.redis),
]


def ping(destination: str, n: int = 0) -> TransportMessage:
    return TransportMessage(f"m-{uuid.uuid4().hex}-{n}", destination, "Ping", b"{}")


async def unavailable(operation: object) -> None:
    assert asyncio.iscoroutine(operation)
    with pytest.raises(TransportUnavailableError):
        await asyncio.wait_for(operation, _WAIT)  # a hang fails here, not in pytest-timeout


@pytest.mark.parametrize(("factory", "port"), BROKERS)
async def test_a_broker_that_falls_silent_after_connecting_bounds_every_call(
    factory: Callable[[int], RabbitTransport | NatsTransport | RedisTransport], port: int
) -> None:
    tag = uuid.uuid4().hex[:8]
    known, fresh, later = f"stall-a-{tag}", f"stall-b-{tag}", f"stall-c-{tag}"
    async with FaultProxy(port) as proxy:
        transport = factory(proxy.port)
        try:
            await asyncio.wait_for(transport.declare(known, "g"), _WAIT)
            await asyncio.wait_for(transport.publish(ping(known)), _WAIT)
            proxy.stall()
            # a destination it has not seen yet (declares first) and one it has
            await unavailable(transport.declare(fresh, "g"))
            await unavailable(transport.publish(ping(fresh)))
            await unavailable(transport.publish(ping(known, 1)))
            # the whole batch unavailable, or each of its messages (the relay pauses on both)
            with pytest.raises((BatchPublishError, TransportUnavailableError)) as batch:
                await asyncio.wait_for(
                    transport.publish_many([ping(known, 2), ping(known, 3)]), _WAIT
                )
            if isinstance(batch.value, BatchPublishError):
                reasons = list(batch.value.failed.values())
                assert reasons, batch.value
                assert all(isinstance(r, TransportUnavailableError) for r in reasons), reasons
            backlog = await asyncio.wait_for(transport.backlog(known, "g"), _WAIT)
            assert backlog is None  # not known while the broker does not answer

            async def subscribe() -> None:
                async with transport.subscribe(fresh, "g"):
                    raise AssertionError("subscribed through a stalled connection")

            await unavailable(subscribe())
            await proxy.restore()
            await proxy.cut()  # what a recovered network usually does to a stale connection

            async def works() -> None:
                while True:
                    try:
                        await transport.declare(later, "g")
                        await transport.publish(ping(later))
                    except TransportUnavailableError:
                        await asyncio.sleep(0.1)
                    else:
                        return

            await asyncio.wait_for(works(), _WAIT)
        finally:
            await proxy.restore()
            await asyncio.wait_for(transport.close(), _WAIT)
            await delete_declared(transport, also=())
