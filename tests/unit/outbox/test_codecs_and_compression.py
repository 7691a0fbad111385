"""Per-type codecs and compression from the outbox to a consumer: the row, the transport
message's headers, and the decoding (or the dead letter) on the other side."""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from dockyard.app import App
from dockyard.consumer import Consumer, ConsumerModule, Outcome, listen
from dockyard.messaging import Event, EventHandler
from dockyard.modules import module
from dockyard.outbox import (
    DeadLetters,
    Outbox,
    OutboxModule,
    OutboxRelay,
    OutboxStatus,
    OutboxStore,
    route,
)
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.serialization import DictCodec, Serializer, TypeRegistry, event_type
from dockyard.transport import CONTENT_ENCODING, CONTENT_TYPE, Delivery, TransportMessage
from dockyard.transport.memory import InMemoryTransport


@event_type("report-ready", codec=DictCodec())
class ReportReady(Event):
    """Not a dataclass: it says how it becomes a dict (python-cqrs style)."""

    def __init__(self, report_id: str, body: str) -> None:
        self.report_id, self.body = report_id, body

    def to_dict(self) -> dict[str, Any]:
        return {"report_id": self.report_id, "body": self.body}

    @classmethod
    def from_dict(cls, **kwargs: Any) -> ReportReady:
        return cls(kwargs["report_id"], kwargs["body"])


@dataclass(frozen=True, slots=True)
class Pinged(Event):
    note: str


SEEN: list[object] = []


class OnReport(EventHandler[ReportReady]):
    async def handle(self, event: ReportReady, /) -> None:
        SEEN.append((event.report_id, len(event.body)))


class OnPing(EventHandler[Pinged]):
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def handle(self, event: Pinged, /) -> None:
        SEEN.append(event)
        if event.note == "echo":  # written while a compressed message is handled
            await self._outbox.add(Pinged("small"), destination="echoes")


class Delivered(Delivery):
    def __init__(self, message: TransportMessage) -> None:
        self._message = message
        self.outcome = ""

    @property
    def message(self) -> TransportMessage:
        return self._message

    @property
    def attempt(self) -> int:
        return 1

    async def ack(self) -> None:
        self.outcome = "ack"

    async def nack(self, *, delay: float = 0.0) -> None:
        self.outcome = "nack"


@dataclass
class Apps:
    sender: App
    receiver: App
    transport: InMemoryTransport
    sent: InMemoryOutboxBackend
    received: InMemoryOutboxBackend


@pytest.fixture
async def apps() -> AsyncIterator[Apps]:
    SEEN.clear()
    transport = InMemoryTransport()
    sent, received = InMemoryOutboxBackend(), InMemoryOutboxBackend()

    @module(
        imports=[
            OutboxModule.register(
                transport=transport,
                backend=sent,
                routes=[route(ReportReady).to("reports"), route(Pinged).to("reports")],
                compress_above=1024,
            )
        ]
    )
    class Sender: ...

    @module(
        handlers=[OnReport, OnPing],
        imports=[
            OutboxModule.register(transport=transport, backend=received, run_relay=False),
            ConsumerModule.register(
                endpoints=[listen("reports", group="archive", max_payload=100_000)]
            ),
        ],
    )
    class Receiver: ...

    sender, receiver = App.build(Sender), App.build(Receiver)
    async with sender, receiver:
        yield Apps(sender, receiver, transport, sent, received)


async def consumer(app: App) -> Consumer:
    service = next(s for s in app.background_services() if s.name.startswith("consumer:"))
    built = await service.build()  # type: ignore[attr-defined]
    assert isinstance(built, Consumer)
    return built


async def relayed(apps: Apps) -> list[TransportMessage]:
    """Relay the sender's outbox and take what the transport holds for the receiver."""
    await apps.transport.declare("reports", "archive")
    relay = OutboxRelay(await apps.sender.get(OutboxStore), apps.transport)
    await relay.drain()
    messages: list[TransportMessage] = []
    async with apps.transport.subscribe("reports", "archive", prefetch=100) as subscription:
        async for delivery in subscription:
            messages.append(delivery.message)
            await delivery.ack()
            if not apps.transport.pending("reports", "archive"):
                break
    return messages


async def test_a_dict_codec_type_and_a_big_payload_travel_compressed_with_their_headers(
    apps: Apps,
) -> None:
    big = "x" * 5000
    await apps.sender.publish(ReportReady("r-1", big))
    await apps.sender.publish(ReportReady("r-2", "short"))
    rows = sorted(apps.sent.store._rows.values(), key=lambda r: r.created_at)
    assert [r.type_name for r in rows] == ["report-ready", "report-ready"]
    big_row, small_row = rows
    assert big_row.headers[CONTENT_ENCODING] == "gzip"
    assert big_row.headers[CONTENT_TYPE] == "application/json"
    assert len(big_row.payload) < 200  # stored compressed, too
    assert gzip.decompress(big_row.payload) == b'{"report_id":"r-1","body":"%s"}' % big.encode()
    assert CONTENT_ENCODING not in small_row.headers
    assert small_row.payload == b'{"report_id":"r-2","body":"short"}'

    messages = await relayed(apps)
    assert [m.headers.get(CONTENT_ENCODING) for m in messages] == ["gzip", None]
    receiving = await consumer(apps.receiver)
    for message in messages:
        delivery = Delivered(message)
        assert await receiving.handle(delivery) is Outcome.HANDLED
        assert delivery.outcome == "ack"
    assert SEEN == [("r-1", 5000), ("r-2", 5)]


async def test_headers_of_the_handled_message_do_not_leak_into_what_its_handler_writes(
    apps: Apps,
) -> None:
    await apps.sender.publish(Pinged("echo"))
    row = next(iter(apps.sent.store._rows.values()))
    compressed = dataclasses.replace(
        row.to_transport(),
        payload=gzip.compress(row.payload),
        headers={**row.headers, CONTENT_ENCODING: "gzip"},
    )
    assert await (await consumer(apps.receiver)).handle(Delivered(compressed)) is Outcome.HANDLED
    echoed = next(iter(apps.received.store._rows.values()))
    assert echoed.destination == "echoes"
    assert CONTENT_ENCODING not in echoed.headers  # not compressed: it must not say gzip
    assert echoed.headers[CONTENT_TYPE] == "application/json"


@pytest.mark.parametrize(
    ("payload", "encoding", "reason"),
    [
        (b"\x1f\x8b not really gzip", "gzip", "its gzip payload does not decompress"),
        (gzip.compress(b'{"note":"x"}', mtime=0)[:-4], "gzip", "its gzip payload is cut short"),
        (b'{"note":"x"}', "br", "its `content-encoding` is `br`, and only gzip is understood"),
        (gzip.compress(b" " * 100_001, mtime=0), "gzip", "decompresses to over the endpoint's max"),
    ],
)
async def test_a_malformed_compressed_payload_is_a_dead_letter_with_the_reason(
    apps: Apps, payload: bytes, encoding: str, reason: str
) -> None:
    message = TransportMessage(
        "m-1", "reports", "Pinged", payload, headers={CONTENT_ENCODING: encoding}
    )
    delivery = Delivered(message)
    assert await (await consumer(apps.receiver)).handle(delivery) is Outcome.DEAD
    assert delivery.outcome == "ack"
    [letter] = await (await apps.receiver.get(DeadLetters)).list()
    assert letter.status is OutboxStatus.DEAD
    assert letter.payload == payload  # kept as it came, with its headers: replay sends it again
    assert letter.headers[CONTENT_ENCODING] == encoding
    assert reason in (letter.last_error or "")
    assert SEEN == []


async def test_a_payload_in_another_codec_is_a_dead_letter_naming_both_media_types(
    apps: Apps,
) -> None:
    message = TransportMessage(
        "m-2",
        "reports",
        "report-ready",
        b"\x08\x01",
        headers={CONTENT_TYPE: "application/x-protobuf"},
    )
    assert await (await consumer(apps.receiver)).handle(Delivered(message)) is Outcome.DEAD
    [letter] = await (await apps.receiver.get(DeadLetters)).list()
    assert (
        "the payload of `report-ready` is `application/x-protobuf` and this app decodes it as "
        "`application/json` (DictCodec)"
    ) in (letter.last_error or "")


async def test_a_registry_codec_is_used_by_the_outbox_and_the_consumer() -> None:
    class Note(Event):
        def __init__(self, text: str) -> None:
            self.text = text

        def to_dict(self) -> dict[str, str]:
            return {"text": self.text}

        @classmethod
        def from_dict(cls, data: dict[str, str]) -> Note:
            return cls(data["text"])

    got: list[str] = []

    class OnNote(EventHandler[Note]):
        async def handle(self, event: Note, /) -> None:
            got.append(event.text)

    def serializer() -> Serializer:
        registry = TypeRegistry()
        registry.register(Note, codec=DictCodec())
        return Serializer(registry)

    transport = InMemoryTransport()
    sent = InMemoryOutboxBackend()

    @module(
        imports=[
            OutboxModule.register(
                transport=transport,
                backend=sent,
                routes=[route(Note).to("notes")],
                serializer=serializer(),
            )
        ],
    )
    class Sender: ...

    @module(
        handlers=[OnNote],
        imports=[
            OutboxModule.register(
                transport=transport, backend=InMemoryOutboxBackend(), serializer=serializer()
            ),
            ConsumerModule.register(endpoints=[listen("notes", group="g")]),
        ],
    )
    class Receiver: ...

    sender, receiver = App.build(Sender), App.build(Receiver)
    async with sender, receiver:
        await sender.publish(Note("hello"))
        [row] = sent.store._rows.values()
        assert row.payload == b'{"text":"hello"}'
        assert await (await consumer(receiver)).handle(Delivered(row.to_transport())) is (
            Outcome.HANDLED
        )
    assert got == ["hello"]


async def test_a_protobuf_message_crosses_with_its_content_type() -> None:
    from google.protobuf import (  # type: ignore[import-untyped]
        descriptor_pb2,
        proto_builder,
    )

    field = descriptor_pb2.FieldDescriptorProto
    Shipped: Any = proto_builder.MakeSimpleProtoClass(  # noqa: N806 - a class
        {"order_id": field.TYPE_STRING}, full_name="dockyard_tests.Shipped"
    )
    got: list[str] = []

    class OnShipped(EventHandler[Shipped]):
        async def handle(self, event: Any, /) -> None:
            got.append(event.order_id)

    transport, sent = InMemoryTransport(), InMemoryOutboxBackend()

    @module(imports=[OutboxModule.register(transport=transport, backend=sent)])
    class Sender: ...

    @module(
        handlers=[OnShipped],
        imports=[
            OutboxModule.register(transport=transport, backend=InMemoryOutboxBackend()),
            ConsumerModule.register(endpoints=[listen("shipping", group="g")]),
        ],
    )
    class Receiver: ...

    sender, receiver = App.build(Sender), App.build(Receiver)
    async with sender, receiver:
        async with sender.scope() as scope:
            outbox = await scope.get(Outbox)
            await outbox.add(Shipped(order_id="o-9"), destination="shipping")
        [row] = sent.store._rows.values()
        assert row.headers[CONTENT_TYPE] == "application/x-protobuf"
        assert row.payload == Shipped(order_id="o-9").SerializeToString()
        outcome = await (await consumer(receiver)).handle(Delivered(row.to_transport()))
        assert outcome is Outcome.HANDLED
    assert got == ["o-9"]
