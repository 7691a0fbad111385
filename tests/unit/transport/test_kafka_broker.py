"""``KafkaTransport`` over FastStream's in-memory ``TestKafkaBroker`` (no Kafka server here).

The test broker calls a subscription's handler from ``publish``, so a publish returns once the
consumer settled the message; the tests consume in a task while they publish.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import sys

import pytest
from faststream.kafka import TestKafkaBroker

from dockyard.exceptions import TransportClosedError, TransportUnavailableError
from dockyard.transport import TransportMessage
from dockyard.transport._faststream import decode_headers, encode_headers
from dockyard.transport.kafka import KafkaTransport


def _message(n: int, key: str | None = "order-1") -> TransportMessage:
    return TransportMessage(
        message_id=f"m-{n}",
        destination="kafka://orders",
        type_name="shop.OrderPlaced",
        payload=b'{"n":%d}' % n,
        schema_version=2,
        headers={"correlation-id": "c-1", "traceparent": "00-abc-def-01"},
        partition_key=key,
    )


async def test_a_message_arrives_with_its_envelope_and_key() -> None:
    transport = KafkaTransport()
    async with TestKafkaBroker(transport.broker), transport.subscribe("orders", "billing") as sub:
        received: list[TransportMessage] = []

        async def consume() -> None:
            async for delivery in sub:
                received.append(delivery.message)
                await delivery.ack()
                return

        task = asyncio.create_task(consume())
        await transport.publish(_message(1))
        await asyncio.wait_for(task, 5)
    # the destination is the subscribed one; the scheme prefix only picks the transport
    assert received == [dataclasses.replace(_message(1), destination="orders")]
    assert transport.published == 1


async def test_a_rejected_record_comes_back_before_the_next_of_its_key() -> None:
    transport = KafkaTransport()
    seen: list[tuple[str, int]] = []
    async with TestKafkaBroker(transport.broker), transport.subscribe("orders", "billing") as sub:

        async def consume() -> None:
            async for delivery in sub:
                seen.append((delivery.message.message_id, delivery.attempt))
                if delivery.attempt == 1 and delivery.message.message_id == "m-0":
                    await delivery.nack(delay=0.05)
                    continue
                await delivery.ack()
                if len(seen) == 3:
                    return

        task = asyncio.create_task(consume())
        for n in range(2):
            await transport.publish(_message(n))
        await asyncio.wait_for(task, 5)
    assert seen == [("m-0", 1), ("m-0", 2), ("m-1", 1)]


async def test_publish_many_delivers_each_key_in_order() -> None:
    transport = KafkaTransport()
    sent = [_message(n, key=f"order-{n % 2}") for n in range(6)]
    seen: list[TransportMessage] = []
    async with TestKafkaBroker(transport.broker), transport.subscribe("orders", "billing") as sub:

        async def consume() -> None:
            async for delivery in sub:
                seen.append(delivery.message)
                await delivery.ack()
                if len(seen) == len(sent):
                    return

        task = asyncio.create_task(consume())
        await transport.publish_many(sent)
        await asyncio.wait_for(task, 5)
    for key in ("order-0", "order-1"):
        assert [m.message_id for m in seen if m.partition_key == key] == [
            m.message_id for m in sent if m.partition_key == key
        ]
    assert transport.published == len(sent)


async def test_a_closed_transport_refuses_to_publish() -> None:
    transport = KafkaTransport()
    async with TestKafkaBroker(transport.broker):
        await transport.publish(_message(1))  # no subscriber: the test broker drops it
        await transport.close()
        with pytest.raises(TransportClosedError, match="kafka transport is closed"):
            await transport.publish(_message(2))


def test_headers_round_trip_and_foreign_messages_still_decode() -> None:
    sent = _message(1)
    headers = encode_headers(sent)
    assert decode_headers(sent.destination, headers, sent.payload, None) == sent
    foreign = decode_headers("orders", {"content-type": "application/json"}, b"{}", "broker-id")
    assert (foreign.message_id, foreign.type_name) == ("broker-id", "")
    assert foreign.headers == {"content-type": "application/json"}  # what the sender said
    untyped = decode_headers("orders", {"content-type": "", "reply_to": "x"}, b"{}", "b")
    assert untyped.headers == {}  # FastStream's empty content-type for bytes, and its own
    odd = decode_headers("orders", {"schema-version": "x", "n": b"\xff"}, b"", "b")
    assert (odd.schema_version, odd.headers) == (0, {"n": "\ufffd"})


@pytest.mark.parametrize("extra", ["rabbit", "nats", "redis", "kafka"])
def test_importing_a_transport_without_its_extra_names_the_install(extra: str) -> None:
    blocked = {"rabbit": "faststream.rabbit", "nats": "faststream.nats",
               "redis": "faststream.redis", "kafka": "faststream.kafka"}[extra]  # fmt: skip
    code = f"import sys\nsys.modules[{blocked!r}] = None\nimport dockyard.transport.{extra}\n"
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert f"pip install 'dockyard[{extra}]'" in result.stderr


async def test_a_broker_nobody_answers_for_is_unavailable_not_a_refusal() -> None:
    # aiokafka's connection errors are RuntimeErrors: untranslated, the relay counted an
    # attempt against every message of an outage and dead-lettered them.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connections to it are refused
    transport = KafkaTransport(f"127.0.0.1:{port}", connect_timeout=2.0)
    try:
        with pytest.raises(TransportUnavailableError, match="kafka broker is unavailable"):
            await transport.publish(_message(1))
        with pytest.raises(TransportUnavailableError):
            await transport.publish_many([_message(2)])
    finally:
        await transport.close()
