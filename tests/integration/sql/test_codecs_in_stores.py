"""A codec per type in the SQL event and snapshot stores, on SQLite and on PostgreSQL: the
bytes stored are the codec's, reads (the replay fast path, upcasting, ``read_all``) decode
through it, and a class with no usable codec is reported, not guessed. The SQL outbox keeps a
compressed payload and its headers as written."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from dockyard.eventsourcing import ExpectedVersion
from dockyard.exceptions import CorruptEventError, SerializationError
from dockyard.outbox import Outbox, OutboxConfig, OutboxRelay, RelaySettings
from dockyard.serialization import DictCodec, JsonObject, Serializer, TypeRegistry, event_type
from dockyard.sql import Database, SqlEventStore, SqlOutboxStore, SqlOutboxWriter, SqlSnapshotStore
from dockyard.telemetry import Instruments
from dockyard.transport import CONTENT_ENCODING, CONTENT_TYPE, TransportMessage
from dockyard.transport.memory import InMemoryTransport


class Dicty:
    def __init__(self, order_id: str, total: int) -> None:
        self.order_id, self.total = order_id, total

    def to_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "total": self.total}

    @classmethod
    def from_dict(cls, **kwargs: Any) -> Any:
        return cls(**kwargs)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]


@event_type("order-placed", schema_version=2, codec=DictCodec())
class OrderPlaced(Dicty): ...


class OrderShipped(Dicty): ...  # its codec comes from the registry, not the class


class Basket(Dicty): ...  # a snapshot state


class Plain:
    def __init__(self, x: int) -> None:
        self.x = x


def serializer() -> Serializer:
    registry = TypeRegistry([OrderPlaced])
    registry.register(OrderShipped, codec=DictCodec())
    registry.register(Basket, codec=DictCodec())

    @registry.upcaster(OrderPlaced, from_version=1)
    def add_total(obj: JsonObject) -> JsonObject:
        return {**obj, "total": 0}

    return Serializer(registry)


@event_type("order-placed", codec=DictCodec())  # what older code wrote: version 1
class OldOrderPlaced:
    def __init__(self, order_id: str) -> None:
        self.order_id = order_id

    def to_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id}


async def test_events_and_snapshots_go_through_their_codec(database: Database) -> None:
    async with database.unit_of_work() as uow:
        old = SqlEventStore(uow, Serializer())
        await old.append(
            "Order-1", [OldOrderPlaced("o-0")], expected_version=ExpectedVersion.NO_STREAM
        )
        store = SqlEventStore(uow, serializer())
        await store.append(
            "Order-1", [OrderPlaced("o-1", 3), OrderShipped("o-1", 3)], expected_version=1
        )
        rows = await uow.connection.exec_driver_sql(
            "SELECT type_name, schema_version, data FROM dockyard_events ORDER BY stream_version"
        )
        assert [(n, v, bytes(d)) for n, v, d in map(tuple, rows.all())] == [
            ("order-placed", 1, b'{"order_id":"o-0"}'),
            ("order-placed", 2, b'{"order_id":"o-1","total":3}'),
            ("OrderShipped", 1, b'{"order_id":"o-1","total":3}'),
        ]
        await SqlSnapshotStore(uow, serializer()).save("Order-1", 3, Basket("o-1", 3))

    async with database.unit_of_work() as uow:
        store = SqlEventStore(uow, serializer())
        read = [e.data for e in await store.read_stream("Order-1")]
        assert read == [OrderPlaced("o-0", 0), OrderPlaced("o-1", 3), OrderShipped("o-1", 3)]
        assert [e.data for e in await store.read_all()] == read
        snapshot = await SqlSnapshotStore(uow, serializer()).load("Order-1", Basket)
        assert snapshot is not None
        assert (snapshot.stream_version, snapshot.state) == (3, Basket("o-1", 3))


async def test_a_class_with_no_codec_is_refused_on_append_and_reported_on_read(
    database: Database,
) -> None:
    async with database.unit_of_work() as uow:
        store = SqlEventStore(uow, Serializer())
        with pytest.raises(SerializationError) as refused:
            await store.append("Plain-1", [Plain(1)], expected_version=ExpectedVersion.ANY)
        assert "`DictCodec()` for classes with `to_dict()`/`from_dict()`" in str(refused.value)

    # written by an app that had a codec for it, read by one that has none
    writer = Serializer()
    writer.registry.register(Plain, codec=_PlainCodec())
    async with database.unit_of_work() as uow:
        await SqlEventStore(uow, writer).append(
            "Plain-1", [Plain(1)], expected_version=ExpectedVersion.NO_STREAM
        )
    async with database.unit_of_work() as uow:
        reader = Serializer(TypeRegistry([Plain]))
        with pytest.raises(CorruptEventError) as unread:
            await SqlEventStore(uow, reader).read_stream("Plain-1")
    message = str(unread.value)
    assert "in stream `Plain-1` at version 1" in message
    assert "`Plain` is not a dataclass, msgspec Struct, attrs class or pydantic model" in message
    assert "`TypeRegistry.register(Plain, codec=DictCodec())`" in message


class _PlainCodec:
    content_type = "application/json"

    def encode(self, value: object) -> bytes:
        assert isinstance(value, Plain)
        return b'{"x":%d}' % value.x

    def decode(self, data: bytes, cls: type[Any]) -> Any:
        raise NotImplementedError

    def to_object(self, data: bytes) -> JsonObject:
        raise NotImplementedError

    def from_object(self, obj: JsonObject, cls: type[Any]) -> Any:
        raise NotImplementedError


async def test_the_sql_outbox_keeps_a_compressed_payload_and_its_headers(
    database: Database,
) -> None:
    config = OutboxConfig(serializer(), RelaySettings(), compress_above=100)
    async with database.unit_of_work() as uow:
        outbox = Outbox(SqlOutboxWriter(uow), config, Instruments())
        big = await outbox.add(OrderShipped("o-1" * 100, 1), destination="shipping")
        small = await outbox.add(OrderShipped("o-2", 2), destination="shipping")
    store = SqlOutboxStore(database)
    transport = InMemoryTransport()
    await transport.declare("shipping", "g")
    assert await OutboxRelay(store, transport).drain() == 2
    received: dict[str, TransportMessage] = {}
    async with transport.subscribe("shipping", "g", prefetch=2) as subscription:
        async for delivery in subscription:
            received[delivery.message.message_id] = delivery.message
            await delivery.ack()
            if len(received) == 2:
                break
    assert received[big].headers[CONTENT_ENCODING] == "gzip"
    assert received[big].headers[CONTENT_TYPE] == "application/json"
    assert gzip.decompress(received[big].payload) == (
        b'{"order_id":"%s","total":1}' % (b"o-1" * 100)
    )
    assert CONTENT_ENCODING not in received[small].headers
    assert received[small].payload == b'{"order_id":"o-2","total":2}'
