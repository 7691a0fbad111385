"""Serialization of events and snapshots: stable type names, codecs and upcasters.

msgspec JSON is the default codec (dataclasses, msgspec Structs, attrs classes); pydantic
models go through pydantic; a class may declare its own (``@event_type(codec=...)``) or a
registry register one (``TypeRegistry.register(cls, codec=...)``): ``DictCodec`` for classes
with ``to_dict()``/``from_dict()``. Stored values carry a stable type name (declared with
``@event_type`` or the class name, never an import path) and a schema version; older versions
are upcast on read by the chain registered in the ``TypeRegistry``.
"""

from dockyard._public import use_public_paths
from dockyard.serialization._codec import (
    Codec,
    DictCodec,
    JsonObject,
    MsgspecJsonCodec,
    PydanticJsonCodec,
    default_codec_for,
)
from dockyard.serialization._names import event_type, schema_version_of, type_name_of
from dockyard.serialization._registry import RegisteredType, TypeRegistry, Upcaster
from dockyard.serialization._serializer import SerializedValue, Serializer

__all__ = [
    "Codec",
    "DictCodec",
    "JsonObject",
    "MsgspecJsonCodec",
    "PydanticJsonCodec",
    "RegisteredType",
    "SerializedValue",
    "Serializer",
    "TypeRegistry",
    "Upcaster",
    "default_codec_for",
    "event_type",
    "schema_version_of",
    "type_name_of",
]

use_public_paths(__name__, __all__)
