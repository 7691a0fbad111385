"""Codecs per type: ``TypeRegistry.register(cls, codec=...)``, ``@event_type(codec=...)`` and
``DictCodec`` for classes with ``to_dict()``/``from_dict()``; compression of payloads."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.exceptions import CorruptEventError, SerializationError
from dockyard.serialization import (
    DictCodec,
    JsonObject,
    MsgspecJsonCodec,
    Serializer,
    TypeRegistry,
    default_codec_for,
    event_type,
)
from dockyard.serialization._compression import compress, decompress


class Placed:
    """A python-cqrs-style class: no dataclass, a dict in and out."""

    def __init__(self, order_id: str, total: int) -> None:
        self.order_id, self.total = order_id, total

    def to_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "total": self.total}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Placed:
        return cls(data["order_id"], data["total"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Placed) and other.to_dict() == self.to_dict()

    __hash__ = None  # type: ignore[assignment]


class ByKeywords(Placed):
    """python-cqrs spells it ``from_dict(**kwargs)``."""

    @classmethod
    def from_dict(cls, **kwargs: Any) -> ByKeywords:  # type: ignore[override]
        return cls(kwargs["order_id"], kwargs["total"])


@event_type("shipped", schema_version=2, codec=DictCodec())
class Shipped(Placed): ...


class Plain:
    def __init__(self, x: int) -> None:
        self.x = x


class Tagged:
    """A codec of its own with a media type of its own."""

    content_type = "text/plain"

    def encode(self, value: object) -> bytes:
        assert isinstance(value, Placed)
        return f"{value.order_id}:{value.total}".encode()

    def decode(self, data: bytes, cls: type[Any]) -> Any:
        return self.from_object(self.to_object(data), cls)

    def to_object(self, data: bytes) -> JsonObject:
        order_id, _, total = data.decode().partition(":")
        if not total.isdigit():
            raise ValueError(f"not order:total: {data!r}")
        return {"order_id": order_id, "total": int(total)}

    def from_object(self, obj: JsonObject, cls: type[Any]) -> Any:
        return cls(obj["order_id"], obj["total"])


def test_a_registered_codec_encodes_and_decodes_its_type() -> None:
    registry = TypeRegistry()
    entry = registry.register(Placed, codec=DictCodec())
    assert isinstance(entry.codec, DictCodec)
    assert entry.content_type == "application/json"
    serializer = Serializer(registry)
    stored = serializer.serialize(Placed("o-1", 5))
    assert (stored.type_name, stored.data, stored.content_type) == (
        "Placed",
        b'{"order_id":"o-1","total":5}',
        "application/json",
    )
    assert serializer.deserialize("Placed", 1, stored.data) == Placed("o-1", 5)


def test_from_dict_taking_keywords_only_gets_them() -> None:
    serializer = Serializer(TypeRegistry())
    serializer.registry.register(ByKeywords, codec=DictCodec())
    data = serializer.serialize(ByKeywords("o-2", 7)).data
    assert serializer.deserialize("ByKeywords", 1, data) == ByKeywords("o-2", 7)


def test_a_codec_declared_on_the_class_holds_in_every_registry() -> None:
    for registry in (TypeRegistry(), TypeRegistry([Shipped])):
        entry = registry.entry_for(Shipped)
        assert (entry.name, entry.schema_version) == ("shipped", 2)
        assert isinstance(entry.codec, DictCodec)
    assert isinstance(default_codec_for(Shipped), DictCodec)

    class Later(Shipped): ...  # subclasses inherit the codec, not the name or version

    entry = TypeRegistry().entry_for(Later)
    assert (entry.name, entry.schema_version, type(entry.codec)) == ("Later", 1, DictCodec)


def test_a_codec_replaces_the_default_and_keeps_the_upcasters() -> None:
    registry = TypeRegistry([Shipped])
    registry.register(Placed)  # used with the default codec first (a consumer registers it)
    registry.add_upcaster(Placed, 1, lambda obj: obj)
    entry = registry.register(Placed, codec=DictCodec())
    assert isinstance(entry.codec, DictCodec)
    assert 1 in entry.upcasters
    assert registry.get("Placed") is entry
    assert registry.register(Placed, codec=DictCodec()) is entry  # same kind: idempotent
    assert registry.register(Placed) is entry
    with pytest.raises(ValueError, match="registered with codec DictCodec already"):
        registry.register(Placed, codec=Tagged())


def test_upcasting_goes_through_the_registered_codec() -> None:
    @event_type("moved", schema_version=2)
    class Moved(Placed): ...

    registry = TypeRegistry()
    registry.register(Moved, codec=DictCodec())

    @registry.upcaster(Moved, from_version=1)
    def add_total(obj: JsonObject) -> JsonObject:
        return {**obj, "total": 0}

    moved = Serializer(registry).deserialize("moved", 1, b'{"order_id":"o-3"}')
    assert moved == Moved("o-3", 0)


def test_a_codec_with_its_own_media_type() -> None:
    registry = TypeRegistry()
    registry.register(Placed, codec=Tagged())
    serializer = Serializer(registry)
    stored = serializer.serialize(Placed("o-4", 9))
    assert (stored.data, stored.content_type) == (b"o-4:9", "text/plain")
    assert serializer.deserialize("Placed", 1, stored.data) == Placed("o-4", 9)
    with pytest.raises(CorruptEventError, match="not order:total"):
        serializer.deserialize("Placed", 1, b"garbage")


def test_a_class_without_a_supported_shape_or_a_codec_is_refused_with_the_fix() -> None:
    serializer = Serializer()
    with pytest.raises(SerializationError) as info:
        serializer.serialize(Plain(1))
    message = str(info.value)
    assert message.startswith("Cannot serialize event `Plain`: ")
    assert "`TypeRegistry.register(cls, codec=...)`, `DictCodec()` for classes with" in message
    with pytest.raises(CorruptEventError) as read:
        serializer.deserialize("Plain", 1, b'{"x":1}')
    assert "`Plain` is not a dataclass, msgspec Struct, attrs class or pydantic model" in str(
        read.value
    )
    assert "`TypeRegistry.register(Plain, codec=DictCodec())`" in str(read.value)
    # upcasting goes through from_object: the same words
    registry = TypeRegistry()

    @event_type("plain2", schema_version=2)
    class Plain2(Plain): ...

    registry.register(Plain2)
    registry.add_upcaster(Plain2, 1, lambda obj: obj)
    with pytest.raises(CorruptEventError, match="has no codec of its own"):
        Serializer(registry).deserialize("plain2", 1, b'{"x":1}')


def test_dict_codec_errors_follow_the_codec_contract() -> None:
    codec = DictCodec()
    with pytest.raises(TypeError, match="has no to_dict"):
        codec.encode(Plain(1))
    with pytest.raises(ValueError, match=r"Plain has no from_dict\(\)"):
        codec.decode(b"{}", Plain)
    with pytest.raises(ValueError, match=r"Placed.from_dict\(\) refused it: KeyError: 'total'"):
        codec.decode(b'{"order_id":"o"}', Placed)
    with pytest.raises(ValueError, match=r"JSON has no NaN"):
        codec.encode(Placed("o", float("nan")))  # type: ignore[arg-type]

    class Liar(Placed):
        @classmethod
        def from_dict(cls, data: dict[str, Any]) -> Placed:
            return Placed(data["order_id"], data["total"])

    with pytest.raises(ValueError, match=r"Liar.from_dict\(\) returned Placed, not .*Liar"):
        codec.decode(b'{"order_id":"o","total":1}', Liar)


@dataclass(frozen=True)
class Holder:
    values: list[int]


@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62)), st.text())
def test_dict_codec_round_trips(values: list[int], order_id: str) -> None:
    codec = DictCodec()
    placed = Placed(order_id, len(values))
    assert codec.decode(codec.encode(placed), Placed) == placed
    assert codec.from_object(codec.to_object(codec.encode(placed)), Placed) == placed
    assert MsgspecJsonCodec().decode(MsgspecJsonCodec().encode(Holder(values)), Holder) == (
        Holder(values)
    )


@given(st.binary(max_size=4096))
def test_compression_round_trips_and_is_plain_gzip(data: bytes) -> None:
    packed = compress(data)
    assert gzip.decompress(packed) == data  # any gzip reader reads it
    assert decompress(packed, "gzip", len(data)) == data


def test_decompression_refuses_what_it_cannot_trust() -> None:
    packed = compress(b"x" * 10_000)
    assert len(packed) < 100
    with pytest.raises(ValueError, match="only gzip is understood"):
        decompress(packed, "br", 10_000)
    with pytest.raises(
        ValueError, match=r"decompresses to over the endpoint's max_payload \(9,999\)"
    ):
        decompress(packed, "gzip", 9_999)
    with pytest.raises(ValueError, match="does not decompress"):
        decompress(b"not gzip at all", "gzip", 10_000)
    with pytest.raises(ValueError, match="cut short"):
        decompress(packed[:-8], "gzip", 10_000)
    with pytest.raises(ValueError, match="bytes after the end"):
        decompress(packed + b"tail", "gzip", 10_000)
