"""``ProtobufCodec``: protobuf messages as their binary wire format (``dockyard[protobuf]``).

Protobuf message classes need no declaration: ``default_codec_for`` picks this codec for any
subclass of ``google.protobuf.message.Message``, as it picks pydantic's for pydantic models.
Messages carry ``content-type: application/x-protobuf``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from dockyard.exceptions import MissingExtraError

try:
    from google.protobuf import json_format  # type: ignore[import-untyped,unused-ignore]
    from google.protobuf.message import (  # type: ignore[import-untyped,unused-ignore]
        DecodeError,
        Message,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("dockyard.serialization.protobuf", "protobuf", "protobuf") from exc

from dockyard.serialization._codec import JsonObject

__all__ = ["PROTOBUF", "ProtobufCodec"]

T = TypeVar("T")

PROTOBUF = "application/x-protobuf"


class ProtobufCodec:
    """Protobuf's binary format for ``google.protobuf.message.Message`` classes.

    Protobuf evolves a schema by field numbers, so most changes need no upcaster. When one
    is needed, the stored bytes become a dict through ``json_format`` (field names as in the
    ``.proto`` file, 64-bit integers as strings, as protobuf's JSON mapping has them); that
    needs the class, so give it: ``ProtobufCodec(OrderPlaced)``.
    """

    __slots__ = ("_message_type",)

    content_type = PROTOBUF

    def __init__(self, message_type: type[Any] | None = None) -> None:
        self._message_type = message_type

    def encode(self, value: object) -> bytes:
        if not isinstance(value, Message):
            raise TypeError(f"{type(value).__qualname__} is not a protobuf message")
        data: bytes = value.SerializeToString(deterministic=True)
        return data

    def decode(self, data: bytes, cls: type[T]) -> T:
        if not issubclass(cls, Message):
            raise ValueError(f"{cls.__qualname__} is not a protobuf message class")  # noqa: TRY004 - the decoders' contract
        try:
            result: T = cls.FromString(data)  # type: ignore[attr-defined]
        except DecodeError as exc:
            raise ValueError(f"not a protobuf `{cls.__qualname__}`: {exc}") from exc
        return result

    def to_object(self, data: bytes) -> JsonObject:
        if self._message_type is None:
            raise ValueError(
                "an upcaster needs the stored protobuf message as a dict, and this codec was "
                "not given its class: register it with `ProtobufCodec(TheMessage)`"
            )
        message = self.decode(data, self._message_type)
        result: JsonObject = json_format.MessageToDict(message, preserving_proto_field_name=True)
        return result

    def from_object(self, obj: JsonObject, cls: type[T]) -> T:
        try:
            result: T = json_format.ParseDict(obj, cls())
        except json_format.ParseError as exc:
            raise ValueError(str(exc)) from exc
        return result
