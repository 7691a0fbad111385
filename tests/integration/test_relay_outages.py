"""Outages of NATS JetStream, Redis Streams and Kafka, made by a ``FaultProxy`` the test owns.

* The relay publishing to the broker while the proxy refuses connections (or holds every
  byte): the transport reports ``TransportUnavailableError`` within its ``publish_timeout``
  (its ``connect_timeout`` while it connects), the relay
  pauses, counts no attempt and makes no dead letters; once the broker is back every message
  goes out in key order, with one warning and one info line. Kafka runs on a Tansu of the
  test's own (``integration._apps.tansu``): its metadata sends every client through the proxy,
  the test's own subscriber too, which rides out the outage beside the relay.
* A real ``dockyard worker`` whose broker is unreachable at start, or whose connections are
  cut mid-stream and then refused: ``test_worker_broker_outages.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence

import pytest
from faststream.redis import RedisBroker

from dockyard.exceptions import BatchPublishError, TransportUnavailableError
from dockyard.outbox import OutboxMessage, OutboxRelay, OutboxStatus, RelaySettings
from dockyard.outbox.memory import InMemoryOutboxStore
from dockyard.retry import RetryPolicy
from dockyard.transport import TransportMessage
from dockyard.transport._faststream import FastStreamTransport
from dockyard.transport.kafka import KafkaTransport
from dockyard.transport.nats import NatsTransport
from dockyard.transport.redis import RedisTransport
from faults import FaultProxy
from integration._apps.services import NATS_URL, REDIS_URL, delete_declared
from integration._apps.tansu import proxy_for

_WAIT = 60.0
_MESSAGES = 24


class Counting(FastStreamTransport):
    """Counts the batches refused as unavailable (each would have cost an attempt)."""

    unavailable = 0
    changed: asyncio.Event

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


class CountingNats(Counting, NatsTransport):
    pass


class CountingRedis(Counting, RedisTransport):
    pass


class CountingKafka(Counting, KafkaTransport):
    pass


BROKERS = {"nats": (4222, NATS_URL), "redis": (6379, REDIS_URL)}


def transports(broker: str, port: int) -> tuple[FastStreamTransport, Counting]:
    """A transport straight to the broker, and a counting one through the proxy on ``port``."""
    counting: Counting
    if broker == "nats":
        direct: FastStreamTransport = NatsTransport(NATS_URL)
        counting = CountingNats(
            f"nats://127.0.0.1:{port}", publish_timeout=1.0, connect_timeout=1.0
        )
    elif broker == "redis":
        direct = RedisTransport(REDIS_URL)
        counting = CountingRedis(
            f"redis://127.0.0.1:{port}", publish_timeout=1.0, connect_timeout=1.0
        )
    else:  # the test's own Tansu: every connection goes through the proxy
        direct = KafkaTransport(f"127.0.0.1:{port}", idempotent=False, session_timeout=3.0)
        counting = CountingKafka(
            f"127.0.0.1:{port}", idempotent=False, publish_timeout=1.0, connect_timeout=1.0
        )
    counting.changed = asyncio.Event()
    return direct, counting


@pytest.mark.parametrize("fault", ["refuse", "stall"])
@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("nats", marks=pytest.mark.nats),
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("kafka", marks=pytest.mark.kafka),
    ],
)
async def test_an_outage_pauses_the_relay_and_makes_no_dead_letters(
    broker: str, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    destination = f"outage-{uuid.uuid4().hex[:8]}"
    async with proxy_for(broker, BROKERS.get(broker, (0, ""))[0]) as proxy:
        direct, transport = transports(broker, proxy.port)
        try:
            await _relay_through_an_outage(proxy, direct, transport, destination, fault, caplog)
        finally:
            await transport.close()
            await direct.close()
            await delete_declared(direct)


async def _relay_through_an_outage(
    proxy: FaultProxy,
    direct: FastStreamTransport,
    transport: Counting,
    destination: str,
    fault: str,
    caplog: pytest.LogCaptureFixture,
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
                await proxy.refuse()  # the broker is gone: connection cut, connects refused
            else:
                proxy.stall()  # the broker stops answering: nothing goes through either way
            store.append(messages[8:])
            await asyncio.wait_for(transport.wait_unavailable(3), _WAIT)
            assert await store.dead_letters() == []
            for sent in messages[8:]:
                stored = await store.get(sent.message_id)
                assert stored is not None
                assert (stored.status, stored.attempts) == (OutboxStatus.PENDING, 0)

            await proxy.restore()
            while len({m.message_id for m in got}) < _MESSAGES:
                got.append(await _next(received))
        stop.set()
        await asyncio.wait_for(task, _WAIT)
    finally:
        stop.set()
    ids = [m.message_id for m in got]
    if isinstance(transport, NatsTransport):  # JetStream drops a second publish of an id
        assert sorted(ids) == [m.message_id for m in messages]
    # On Redis an XADD the stall held reaches the server once it is restored, and the relay,
    # told "unavailable", publishes it again: a copy, which the consumer's inbox drops.
    first = list(dict.fromkeys(ids))
    assert sorted(first) == [m.message_id for m in messages]
    keys = {m.message_id: m.partition_key for m in messages}
    for key in ("k-0", "k-1", "k-2", "k-3"):
        order = [i for i in first if keys[i] == key]
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


@pytest.mark.redis
@pytest.mark.parametrize("batch", [False, True], ids=["publish", "publish_many"])
async def test_a_stalled_redis_is_unavailable_after_publish_timeout(batch: bool) -> None:
    # A client that waits for ever for an answer (socket_timeout=None, redis-py's default
    # before 8): the transport's publish_timeout still ends the wait, as an outage.
    destination = f"stalled-{uuid.uuid4().hex[:8]}"
    message = TransportMessage("m-1", destination, "Placed", b"1", partition_key="k")
    async with FaultProxy(6379) as proxy:
        client = RedisBroker(f"redis://127.0.0.1:{proxy.port}", socket_timeout=None, logger=None)  # type: ignore[arg-type]
        transport = RedisTransport(broker=client, publish_timeout=0.5)
        try:
            await transport.declare(destination, "g")  # connected through the proxy
            proxy.stall()
            publishing = transport.publish_many([message]) if batch else transport.publish(message)
            with pytest.raises(TransportUnavailableError, match=r"no answer to XADD within 0\.5s"):
                await asyncio.wait_for(publishing, _WAIT)
        finally:
            await proxy.restore()
            await transport.close()
            await delete_declared(transport)
