"""``ProtobufCodec``: protobuf message classes round-trip with no declaration, and upcast
through protobuf's JSON mapping when the codec knows the class."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, proto_builder  # type: ignore[import-untyped]

from dockyard.exceptions import CorruptEventError
from dockyard.serialization import JsonObject, Serializer, TypeRegistry, default_codec_for
from dockyard.serialization.protobuf import ProtobufCodec

_FIELD = descriptor_pb2.FieldDescriptorProto
OrderPlaced: Any = proto_builder.MakeSimpleProtoClass(
    {"order_id": _FIELD.TYPE_STRING, "total": _FIELD.TYPE_INT64},
    full_name="dockyard_tests.OrderPlaced",
)


def test_protobuf_messages_take_the_protobuf_codec_by_default() -> None:
    codec = default_codec_for(OrderPlaced)
    assert isinstance(codec, ProtobufCodec)
    serializer = Serializer()
    stored = serializer.serialize(OrderPlaced(order_id="o-1", total=1999))
    assert (stored.type_name, stored.content_type) == ("OrderPlaced", "application/x-protobuf")
    assert stored.data == OrderPlaced(order_id="o-1", total=1999).SerializeToString()
    assert serializer.deserialize("OrderPlaced", 1, stored.data) == OrderPlaced(
        order_id="o-1", total=1999
    )
    with pytest.raises(CorruptEventError, match="not a protobuf `OrderPlaced`"):
        serializer.deserialize("OrderPlaced", 1, b"\xff\xff\xff")


def test_an_upcaster_sees_protobufs_json_mapping() -> None:
    OrderPlaced.__schema_version__ = 2
    try:
        registry = TypeRegistry([OrderPlaced])

        @registry.upcaster(OrderPlaced, from_version=1)
        def double(obj: JsonObject) -> JsonObject:
            return {**obj, "total": str(int(obj["total"]) * 2)}  # int64 travels as a string

        old = OrderPlaced(order_id="o-2", total=5).SerializeToString()
        assert Serializer(registry).deserialize("OrderPlaced", 1, old) == OrderPlaced(
            order_id="o-2", total=10
        )
        unbound = TypeRegistry()
        unbound.register(OrderPlaced, codec=ProtobufCodec())
        with pytest.raises(CorruptEventError, match=r"`ProtobufCodec\(TheMessage\)`"):
            Serializer(unbound).deserialize("OrderPlaced", 1, old)
    finally:
        del OrderPlaced.__schema_version__


def test_the_codec_refuses_what_is_not_protobuf() -> None:
    codec = ProtobufCodec()
    with pytest.raises(TypeError, match="is not a protobuf message"):
        codec.encode({"order_id": "o"})
    with pytest.raises(ValueError, match="is not a protobuf message class"):
        codec.decode(b"", dict)


def test_importing_the_codec_without_the_extra_names_the_install() -> None:
    code = (
        "import sys\nsys.modules['google.protobuf'] = None\n"
        "import dockyard.serialization.protobuf\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "pip install 'dockyard[protobuf]'" in result.stderr
