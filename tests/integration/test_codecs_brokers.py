"""Per-type codecs (DictCodec, protobuf) and compressed payloads through every real broker
(RabbitMQ, NATS, Redis, Kafka): the sender's outbox compresses and labels, the receiver's
consumer decompresses and decodes with the type's codec, and a malformed compressed payload
is a dead letter with the reason."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, proto_builder  # type: ignore[import-untyped]

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import DeadLetters, Outbox, OutboxModule, route
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.serialization import DictCodec, event_type
from dockyard.transport import CONTENT_ENCODING, CONTENT_TYPE, Transport, TransportMessage
from dockyard.transport.rabbit import RabbitTransport
from integration._apps.services import KAFKA_SERVERS, delete_declared

RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672/"


@event_type("report-filed", codec=DictCodec())
class ReportFiled(Event):
    def __init__(self, report_id: str, body: str) -> None:
        self.report_id, self.body = report_id, body

    def to_dict(self) -> dict[str, Any]:
        return {"report_id": self.report_id, "body": self.body}

    @classmethod
    def from_dict(cls, **kwargs: Any) -> ReportFiled:
        return cls(kwargs["report_id"], kwargs["body"])


Stamped: Any = proto_builder.MakeSimpleProtoClass(  # a protobuf message, no declaration
    {"report_id": descriptor_pb2.FieldDescriptorProto.TYPE_STRING},
    full_name="dockyard_tests.Stamped",
)

SEEN: list[tuple[str, int]] = []


class Archive(EventHandler[ReportFiled]):
    async def handle(self, event: ReportFiled, /) -> None:
        SEEN.append((event.report_id, len(event.body)))


class Stamp(EventHandler[Stamped]):
    async def handle(self, event: Any, /) -> None:
        SEEN.append((event.report_id, -1))


BROKERS = [
    pytest.param("rabbit", marks=pytest.mark.rabbit),
    pytest.param("nats", marks=pytest.mark.nats),
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("kafka", marks=pytest.mark.kafka),
]


def transport_for(broker: str) -> Transport:
    from dockyard.transport.kafka import KafkaTransport
    from dockyard.transport.nats import NatsTransport
    from dockyard.transport.redis import RedisTransport

    if broker == "rabbit":
        return RabbitTransport(RABBIT_URL)
    if broker == "nats":
        return NatsTransport("nats://127.0.0.1:4222")
    if broker == "redis":
        return RedisTransport("redis://127.0.0.1:6379", poll_interval=0.05)
    # Tansu: no idempotent producer; a group joins after about its session timeout
    return KafkaTransport(KAFKA_SERVERS, idempotent=False, session_timeout=3.0)


@pytest.mark.parametrize("broker", BROKERS)
async def test_compressed_and_per_type_codec_messages_cross_every_broker(broker: str) -> None:
    """Two apps as two workers run them: the sender's relay publishes from its outbox, the
    receiver's consumer decodes each message with its type's codec; a third group on the same
    destination reads what went over the wire."""
    SEEN.clear()
    sending, receiving, tapping = (
        transport_for(broker),
        transport_for(broker),
        transport_for(broker),
    )
    # groups of their own too: Tansu may keep a killed run's members of a shared group name
    suffix = uuid.uuid4().hex[:8]
    destination, group, tap = f"reports-{suffix}", f"archive-{suffix}", f"tap-{suffix}"

    @module(
        imports=[
            OutboxModule.register(
                transport=sending,
                backend=InMemoryOutboxBackend(),
                routes=[route(ReportFiled).to(destination)],
                compress_above=1024,
            )
        ]
    )
    class Sender: ...

    @module(
        handlers=[Archive, Stamp],
        imports=[
            OutboxModule.register(
                transport=receiving, backend=InMemoryOutboxBackend(), run_relay=False
            ),
            ConsumerModule.register(endpoints=[listen(destination, group=group)]),
        ],
    )
    class Receiver: ...

    sender, receiver = App.build(Sender), App.build(Receiver)
    stop = asyncio.Event()
    try:
        for declared in (group, tap):
            await tapping.declare(destination, declared)
        async with sender, receiver:
            workers = [
                asyncio.create_task(app.run_worker(stop=stop, grace=10))
                for app in (sender, receiver)
            ]
            await sender.publish(ReportFiled("r-big", "y" * 200_000))
            await sender.publish(ReportFiled("r-small", "short"))
            async with sender.scope() as scope:
                outbox = await scope.get(Outbox)
                await outbox.add(Stamped(report_id="r-pb"), destination=destination)
            malformed = TransportMessage(
                "bad-1",
                destination,
                "report-filed",
                b"\x1f\x8b\x08\x00 cut",
                headers={CONTENT_ENCODING: "gzip", CONTENT_TYPE: "application/json"},
            )
            await tapping.publish(malformed)
            dead_letters = await receiver.get(DeadLetters)
            async with asyncio.timeout(60):
                while len(SEEN) < 3 or not await dead_letters.list():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            stop.set()
            await asyncio.gather(*workers)

            received: dict[str, TransportMessage] = {}
            async with tapping.subscribe(destination, tap) as subscription:
                deliveries = aiter(subscription)
                while len(received) < 4:
                    delivery = await asyncio.wait_for(anext(deliveries), 30)
                    received[delivery.message.message_id] = delivery.message
                    await delivery.ack()
            [letter] = await dead_letters.list()
    finally:
        stop.set()
        for transport in (sending, receiving, tapping):
            await transport.close()
        await delete_declared(sending, receiving, tapping)

    assert sorted(SEEN) == [("r-big", 200_000), ("r-pb", -1), ("r-small", 5)]
    assert letter.message_id == "bad-1"
    assert "its gzip payload" in (letter.last_error or "")
    [stamped] = [m for m in received.values() if m.type_name == "Stamped"]
    assert stamped.headers[CONTENT_TYPE] == "application/x-protobuf"
    assert stamped.payload == Stamped(report_id="r-pb").SerializeToString()
    filed = [m for i, m in received.items() if m.type_name == "report-filed" and i != "bad-1"]
    [big] = [m for m in filed if CONTENT_ENCODING in m.headers]
    [small] = [m for m in filed if m is not big]
    assert (big.headers[CONTENT_ENCODING], big.headers[CONTENT_TYPE]) == (
        "gzip",
        "application/json",
    )
    assert len(big.payload) < 2_000  # 200 kB of one letter, gzipped on the wire
    assert CONTENT_ENCODING not in small.headers
    assert small.headers[CONTENT_TYPE] == "application/json"


@pytest.mark.parametrize("content_type", ["application/x-protobuf", "application/json"])
@pytest.mark.parametrize("broker", BROKERS)
async def test_content_headers_arrive_as_sent_on_every_broker(
    broker: str, content_type: str
) -> None:
    """FastStream adds a `content-type` of its own on some brokers (empty for bytes): dockyard's
    is sent after it and is the one that arrives, with `content-encoding`, byte for byte. A
    gzipped JSON body is bytes to the transport: FastStream must not try to parse it (it did on
    NATS, and the message was never handed out)."""
    transport = transport_for(broker)
    suffix = uuid.uuid4().hex[:8]
    destination, group = f"codecs-{suffix}", f"g-{suffix}"
    payload = b"\x1f\x8b" + bytes(range(256))  # not text: must arrive intact
    sent = TransportMessage(
        f"m-{broker}",
        destination,
        "Stamped",
        payload,
        headers={CONTENT_TYPE: content_type, CONTENT_ENCODING: "gzip"},
    )
    try:
        await transport.declare(destination, group)
        await transport.publish(sent)
        async with transport.subscribe(destination, group) as subscription:
            delivery = await asyncio.wait_for(anext(aiter(subscription)), 30)
            await delivery.ack()
        got = delivery.message
        assert (got.message_id, got.type_name, got.payload) == (sent.message_id, "Stamped", payload)
        assert got.headers[CONTENT_TYPE] == content_type
        assert got.headers[CONTENT_ENCODING] == "gzip"
    finally:
        await transport.close()
        await delete_declared(transport)
