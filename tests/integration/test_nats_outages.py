"""Outages of NATS JetStream, made by a ``FaultProxy`` the test owns.

* The relay publishing to NATS while the proxy refuses connections (or holds every byte):
  the transport reports ``TransportUnavailableError`` within its ``publish_timeout`` (its
  ``connect_timeout`` while it connects), the relay
  pauses, counts no attempt and makes no dead letters; once NATS is back every message goes
  out in key order, with one warning and one info line.
* A real ``dockyard worker`` whose NATS is unreachable at start keeps running (degraded) and
  consumes once it is reachable; one whose NATS connections are cut mid-stream reconnects,
  and nothing is lost or applied twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence

import pytest

from dockyard.exceptions import BatchPublishError, TransportUnavailableError
from dockyard.outbox import OutboxMessage, OutboxRelay, OutboxStatus, RelaySettings
from dockyard.outbox.memory import InMemoryOutboxStore
from dockyard.retry import RetryPolicy
from dockyard.transport import TransportMessage
from dockyard.transport.nats import NatsTransport
from faults import FaultProxy
from integration._apps.services import NATS_URL, delete_nats_streams

pytestmark = pytest.mark.nats

_WAIT = 60.0
_MESSAGES = 24


class CountingNats(NatsTransport):
    """Counts the batches refused as unavailable (each would have cost an attempt)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, publish_timeout=1.0, connect_timeout=1.0)
        self.unavailable = 0
        self.changed = asyncio.Event()

    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        try:
            await super().publish_many(messages)
        except TransportUnavailableError:
            self._count()
            raise
        except BatchPublishError as exc:
            if any(isinstance(e, TransportUnavailableError) for e in exc.failed.values()):
                self._count()
            raise

    def _count(self) -> None:
        self.unavailable += 1
        self.changed.set()

    async def wait_unavailable(self, times: int) -> None:
        while self.unavailable < times:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), _WAIT)


@pytest.mark.parametrize("fault", ["refuse", "stall"])
async def test_a_nats_outage_pauses_the_relay_and_makes_no_dead_letters(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    destination = f"outage-{uuid.uuid4().hex[:8]}"
    direct = NatsTransport(NATS_URL)
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
    async with FaultProxy(4222) as proxy:
        transport = CountingNats(f"nats://127.0.0.1:{proxy.port}")
        relay = OutboxRelay(store, transport, settings)
        try:
            await transport.declare(destination, "g")  # connected through the proxy
            store.append(messages[:8])
            task = asyncio.create_task(relay.run(stop))
            # prefetch 1: per-key order is promised to subscriptions that settle one at a
            # time (docs/brokers.md); with more in flight, deliveries may be handled out of order
            async with direct.subscribe(destination, "g", prefetch=1) as received:
                got = [await _next(received) for _ in range(8)]

                if fault == "refuse":
                    await proxy.refuse()  # NATS is gone: connection cut, connects refused
                else:
                    proxy.stall()  # NATS stops answering: nothing goes through either way
                store.append(messages[8:])
                await asyncio.wait_for(transport.wait_unavailable(3), _WAIT)
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
            await direct.close()
            await delete_nats_streams(NatsTransport.stream_name(destination))
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
