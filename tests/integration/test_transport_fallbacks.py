"""The broker transports' fast paths, their fallbacks and their deadlines, on the real servers.

``publish_many`` on RabbitMQ fills aiormq's confirmation table itself, and on NATS writes its
commands with nats-py's ``_send_command``: private APIs, probed on the first batch. Here the
probe is made to fail on a real connection (an attribute gone, a method of another shape, a
release the fast path does not know) and every message still arrives, through the client's
public publish, with one warning. And a confirm that never comes (RabbitMQ behind a stalled
``FaultProxy``) ends in ``TransportUnavailableError`` within ``publish_timeout``, on either
path, so the relay pauses instead of dead-lettering healthy messages or hanging with its
claim open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from faststream.rabbit import RabbitBroker
from nats.js.client import JetStreamContext

import dockyard.transport.nats as nats_module
import dockyard.transport.rabbit as rabbit_module
from dockyard.exceptions import TransportUnavailableError
from dockyard.outbox import OutboxMessage, OutboxRelay, RelayResult, RelaySettings
from dockyard.outbox.memory import InMemoryOutboxStore
from dockyard.retry import RetryPolicy
from dockyard.transport import BatchPublishError, Transport, TransportMessage
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport
from faults import FaultProxy
from integration._apps.services import (
    NATS_URL,
    RABBIT_URL,
    delete_nats_streams,
    delete_rabbit_destinations,
    unique,
)

_WAIT = 60.0
_MESSAGES = 12
_FALLBACK = "publish_many publishes each message through the client's public API instead of"


def _wave(destination: str) -> list[TransportMessage]:
    return [
        TransportMessage(f"m-{n:02d}", destination, "Placed", b"%d" % n, partition_key=f"k-{n % 3}")
        for n in range(_MESSAGES)
    ]


async def _received(subscription: Any, count: int) -> list[str]:
    async def take() -> list[str]:
        got: list[str] = []
        async for delivery in subscription:
            await delivery.ack()
            got.append(delivery.message.message_id)
            if len(got) == count:
                return got
        raise AssertionError("the subscription ended")

    return await asyncio.wait_for(take(), _WAIT)


def _fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "dockyard.transport" and r.levelno == logging.WARNING
        if _FALLBACK in r.getMessage()
    ]


async def _delivered_twice(transport: Transport, destination: str) -> list[str]:
    """Publish two batches with ``publish_many``; the ids the group received, in order."""
    assert isinstance(transport, RabbitTransport | NatsTransport)
    async with transport.subscribe(destination, "g", prefetch=1) as subscription:
        await transport.publish_many(_wave(destination)[:6])
        await transport.publish_many(_wave(destination)[6:])  # decided once: no new warning
        return await _received(subscription, _MESSAGES)


def _in_key_order(received: list[str]) -> None:
    assert sorted(received) == [m.message_id for m in _wave("x")]
    for key in range(3):
        of_key = [m for m in received if int(m[2:]) % 3 == key]
        assert of_key == sorted(of_key)


# ------------------------------------------------------------------------------ RabbitMQ


@pytest.fixture
async def rabbit_destination() -> AsyncIterator[str]:
    destination = unique("fallback")
    yield destination
    await delete_rabbit_destinations((destination, f"{destination}.g"))


async def _without_confirmation_ids(
    transport: RabbitTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiormq renamed the table that matches a returned message to its confirm: on the
    # transport's own confirm channel, which only the fast path would publish on
    channel = await transport._confirm_channel()
    del channel.message_id_delivery_tag


async def _unknown_aiormq(transport: RabbitTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rabbit_module, "release", lambda distribution: (8, 0, 0))


@pytest.mark.rabbit
@pytest.mark.parametrize(
    ("break_probe", "problem"),
    [
        (_without_confirmation_ids, "aiormq.channel.Channel has no `message_id_delivery_tag`"),
        (_unknown_aiormq, "aiormq is 8.0.0; the fast path knows 7.2 up to (not including) 8"),
    ],
    ids=["attribute-gone", "unknown-release"],
)
async def test_rabbit_publish_many_falls_back_to_faststream_publish_and_delivers_everything(
    break_probe: Callable[[RabbitTransport, pytest.MonkeyPatch], Awaitable[None]],
    problem: str,
    rabbit_destination: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dockyard.transport")
    transport = RabbitTransport(RABBIT_URL)
    publishes = 0
    public_publish = transport.broker.publish

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal publishes
        publishes += 1
        return await public_publish(*args, **kwargs)

    monkeypatch.setattr(transport.broker, "publish", counted)
    try:
        await transport.declare(rabbit_destination, "g")
        await break_probe(transport, monkeypatch)
        received = await _delivered_twice(transport, rabbit_destination)
        batch_channel = transport._batch_channel
    finally:
        await transport.close()
    _in_key_order(received)
    assert publishes == _MESSAGES  # one confirmed FastStream publish per message
    assert batch_channel is None  # the fast path's channel was closed when it was refused
    (warning,) = _fallback_warnings(caplog)
    assert f"because {problem}." in warning


@pytest.mark.rabbit
@pytest.mark.parametrize("path", ["fast", "fallback"])
async def test_a_rabbit_confirm_that_never_comes_is_an_outage_not_a_failed_message(
    path: str, rabbit_destination: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "fallback":
        monkeypatch.setattr(rabbit_module, "release", lambda distribution: (8, 0, 0))
    store = InMemoryOutboxStore()
    now = time.time()
    store.append(
        [
            OutboxMessage(
                f"o-{n}", rabbit_destination, "Placed", b"{}", partition_key=f"k-{n}",
                created_at=now, next_attempt_at=now,
            )
            for n in range(6)
        ]
    )  # fmt: skip
    # One counted failure would make a dead letter: an outage must count none.
    settings = RelaySettings(batch_size=6, retry=RetryPolicy(max_attempts=1))
    async with FaultProxy(5672) as proxy:
        broker = RabbitBroker(f"amqp://guest:guest@127.0.0.1:{proxy.port}/", logger=None)
        transport = RabbitTransport(broker=broker, publish_timeout=1.0)
        relay = OutboxRelay(store, transport, settings)
        try:
            await transport.declare(rabbit_destination, "g")  # connected through the proxy
            await transport.publish_many(_wave(rabbit_destination)[:2])  # the path is chosen
            assert transport._fast_waves is (path == "fast")

            proxy.stall()  # RabbitMQ stops answering: the confirms never arrive
            started = time.monotonic()
            with pytest.raises(BatchPublishError) as raised:
                await asyncio.wait_for(transport.publish_many(_wave(rabbit_destination)), 30)
            waited = time.monotonic() - started
            failed = raised.value.failed
            assert len(failed) == 3  # the first wave; the rest of those keys held back
            assert all(isinstance(e, TransportUnavailableError) for e in failed.values())
            assert all("no publisher confirm within 1s" in str(e) for e in failed.values())
            assert 0.9 <= waited < 20, waited
            result = await asyncio.wait_for(relay.relay_once(), 30)
            assert result == RelayResult(claimed=6, unavailable=6), result
            assert await store.dead_letters() == []

            await proxy.restore()
            result = await asyncio.wait_for(relay.relay_once(), 30)
            assert result == RelayResult(claimed=6, delivered=6), result
        finally:
            await transport.close()


# ---------------------------------------------------------------------------------- NATS


@pytest.fixture
async def nats_destination() -> AsyncIterator[str]:
    destination = unique("fallback")
    yield destination
    await delete_nats_streams(NatsTransport.stream_name(destination))


def _send_command_not_a_coroutine(
    transport: NatsTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nats-py's writer of another shape (a plain function returning an awaitable): nats-py's
    # own publish still works with it, the fast path must not assume it
    client = transport.broker.connection
    send = client._send_command

    def _send_command(cmd: bytes, priority: bool = False) -> Any:
        return send(cmd, priority)

    monkeypatch.setattr(client, "_send_command", _send_command)


def _unknown_nats_py(transport: NatsTransport, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nats_module, "release", lambda distribution: (3, 0))


@pytest.mark.nats
@pytest.mark.parametrize(
    ("break_probe", "problem"),
    [
        (_send_command_not_a_coroutine, "nats.aio.client.Client has `_send_command` is function"),
        (_unknown_nats_py, "nats-py is 3.0; the fast path knows 2.14 up to (not including) 3"),
    ],
    ids=["other-shape", "unknown-release"],
)
async def test_nats_publish_many_falls_back_to_publish_async_and_delivers_everything(
    break_probe: Callable[[NatsTransport, pytest.MonkeyPatch], None],
    problem: str,
    nats_destination: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dockyard.transport")
    publishes = 0
    public_publish = JetStreamContext.publish_async

    async def counted(self: JetStreamContext, *args: Any, **kwargs: Any) -> Any:
        nonlocal publishes
        publishes += 1
        return await public_publish(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext, "publish_async", counted)
    transport = NatsTransport(NATS_URL)
    try:
        await transport.declare(nats_destination, "g")
        break_probe(transport, monkeypatch)
        received = await _delivered_twice(transport, nats_destination)
    finally:
        await transport.close()
    _in_key_order(received)
    assert publishes == _MESSAGES  # one acknowledged JetStream publish per message
    (warning,) = _fallback_warnings(caplog)
    assert f"because {problem}." in warning


@pytest.mark.nats
async def test_nats_publish_many_takes_the_fast_path_on_the_known_client(
    nats_destination: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="dockyard.transport")
    publishes = 0
    public_publish = JetStreamContext.publish_async

    async def counted(self: JetStreamContext, *args: Any, **kwargs: Any) -> Any:
        nonlocal publishes
        publishes += 1
        return await public_publish(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext, "publish_async", counted)
    transport = NatsTransport(NATS_URL)
    try:
        await transport.declare(nats_destination, "g")
        received = await _delivered_twice(transport, nats_destination)
    finally:
        await transport.close()
    _in_key_order(received)
    assert publishes == 0
    assert _fallback_warnings(caplog) == []
