"""The relay through a real broker outage: RabbitMQ behind a ``FaultProxy`` the test owns.

While the proxy refuses connections the transport reports ``TransportUnavailableError`` and
the relay pauses: no attempt is counted, nothing becomes a dead letter, however many tries
find the broker down. Once the proxy forwards again every message goes out, in key order.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence

import pytest
from faststream.rabbit import RabbitBroker

from dockyard.exceptions import TransportUnavailableError
from dockyard.outbox import OutboxMessage, OutboxRelay, OutboxStatus, RelaySettings
from dockyard.outbox.memory import InMemoryOutboxStore
from dockyard.retry import RetryPolicy
from dockyard.transport import TransportMessage
from dockyard.transport.rabbit import RabbitTransport
from faults import FaultProxy
from integration._apps.services import delete_declared

pytestmark = pytest.mark.rabbit

_WAIT = 60.0
_MESSAGES = 24


class CountingRabbit(RabbitTransport):
    """Counts the batches refused as unavailable (each would have cost an attempt)."""

    def __init__(self, broker: RabbitBroker) -> None:
        super().__init__(broker=broker)
        self.unavailable = 0
        self.changed = asyncio.Event()

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        try:
            await super().publish_many(messages)
        except TransportUnavailableError:
            self.unavailable += 1
            self.changed.set()
            raise

    async def wait_unavailable(self, times: int) -> None:
        while self.unavailable < times:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), _WAIT)


async def test_a_rabbit_outage_pauses_the_relay_and_makes_no_dead_letters(
    caplog: pytest.LogCaptureFixture,
) -> None:
    destination = f"outage-{uuid.uuid4().hex[:8]}"
    direct = RabbitTransport("amqp://guest:guest@127.0.0.1:5672/")
    try:
        await _relay_through_an_outage(direct, destination, caplog)
    finally:
        await direct.close()
        await delete_declared(direct)


async def _relay_through_an_outage(
    direct: RabbitTransport, destination: str, caplog: pytest.LogCaptureFixture
) -> None:
    await direct.declare(destination, "g")
    now = time.time()
    messages = [
        OutboxMessage(
            f"m-{n:03d}", destination, "Placed", b"%d" % n, partition_key=f"k-{n % 4}",
            created_at=now, next_attempt_at=now,
        )
        for n in range(_MESSAGES)
    ]  # fmt: skip
    store = InMemoryOutboxStore()
    settings = RelaySettings(
        batch_size=8,
        retry=RetryPolicy(max_attempts=2, initial_delay=0.0),  # one counted failure: dead
        outage_pause=0.05,
        max_outage_pause=0.5,
    )
    caplog.set_level(logging.INFO, logger="dockyard.outbox")
    stop = asyncio.Event()
    async with FaultProxy(5672) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        transport = CountingRabbit(RabbitBroker(url, reconnect_interval=0.2, logger=None))
        relay = OutboxRelay(store, transport, settings)
        try:
            await transport.declare(destination, "g")  # connected through the proxy
            store.append(messages[:8])
            task = asyncio.create_task(relay.run(stop))
            # prefetch 1: per-key order is promised to subscriptions that settle one at a
            # time (docs/brokers.md); with more in flight, deliveries may be handled out of order
            async with direct.subscribe(destination, "g", prefetch=1) as received:
                got = [await _next(received) for _ in range(8)]

                await proxy.refuse()  # the broker is gone: connection cut, connects refused
                store.append(messages[8:])
                await asyncio.wait_for(transport.wait_unavailable(5), _WAIT)
                assert await store.dead_letters() == []
                for sent in messages[8:]:
                    stored = await store.get(sent.message_id)
                    assert stored is not None
                    assert (stored.status, stored.attempts) == (OutboxStatus.PENDING, 0)

                await proxy.restore()
                got += [await _next(received) for _ in range(_MESSAGES - 8)]
            stop.set()
            await asyncio.wait_for(task, _WAIT)
        finally:
            stop.set()
            await transport.close()
    assert sorted(m.message_id for m in got) == [m.message_id for m in messages]
    for key in ("k-0", "k-1", "k-2", "k-3"):
        order = [m.message_id for m in got if m.partition_key == key]
        assert order == sorted(order), f"{key} was reordered"
    assert await store.dead_letters() == []
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "dockyard.outbox"]
    warnings = [text for level, text in logged if level >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "the transport is unavailable; relaying is paused" in warnings[0]
    recovered = [text for level, text in logged if level == logging.INFO]
    assert len(recovered) == 1, recovered
    assert "the transport is available again after" in recovered[0]


async def _next(subscription: object) -> TransportMessage:
    async def take() -> TransportMessage:
        async for delivery in subscription:  # type: ignore[attr-defined]
            await delivery.ack()
            return delivery.message  # type: ignore[no-any-return]
        raise AssertionError("the subscription ended")

    return await asyncio.wait_for(take(), _WAIT)
