"""The serializer: registry + codecs, with upcasting on the way back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from dockyard.exceptions import (
    CorruptEventError,
    MissingUpcasterError,
    SerializationError,
    UnknownEventTypeError,
)
from dockyard.serialization._codec import JSON
from dockyard.serialization._registry import RegisteredType, TypeRegistry

__all__ = ["SerializedValue", "Serializer"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SerializedValue:
    """A value ready to store: its stable type name, schema version and encoded bytes, and
    the media type of those bytes (the codec's ``content_type``)."""

    type_name: str
    schema_version: int
    data: bytes
    content_type: str = JSON


class Serializer:
    """Serializes events and snapshots by stable type name and upcasts them on read.

    One serializer per app is typical; it is safe to share (its caches only grow).
    """

    __slots__ = ("registry",)

    def __init__(self, registry: TypeRegistry | None = None) -> None:
        self.registry = registry if registry is not None else TypeRegistry()

    def serialize(self, value: object) -> SerializedValue:
        """Encode ``value``; its class is registered under its declared name if it was not.

        Raises:
            SerializationError: the codec cannot encode the value.
            EventTypeConflictError: another class already uses the declared name.
        """
        entry = self.registry.entry_for(type(value))
        try:
            data = entry.codec.encode(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(entry.name, str(exc)) from exc
        return SerializedValue(entry.name, entry.schema_version, data, entry.content_type)

    def deserialize(self, type_name: str, schema_version: int, data: bytes) -> object:
        """Decode stored bytes into an instance of the class registered as ``type_name``.

        Raises:
            UnknownEventTypeError: nothing is registered under ``type_name``.
            MissingUpcasterError: the schema versions cannot be bridged.
            CorruptEventError: the bytes do not decode into the class.
        """
        entry = self.registry.get(type_name)
        if entry is None:
            raise UnknownEventTypeError(type_name)
        return self.decode_as(entry, schema_version, data)

    def decode_as(self, entry: RegisteredType, schema_version: int, data: bytes) -> object:
        """Decode ``data`` stored at ``schema_version`` as ``entry``'s class, upcasting first."""
        codec = entry.codec
        try:
            if schema_version == entry.schema_version:
                return codec.decode(data, entry.cls)
            obj = codec.to_object(data)
        except ValueError as exc:
            raise CorruptEventError(entry.name, _first_line(exc)) from exc
        obj = self.registry.upcast(entry, obj, schema_version)  # MissingUpcasterError passes
        try:
            return codec.from_object(obj, entry.cls)
        except (ValueError, TypeError) as exc:
            detail = f"after upcasting from schema version {schema_version}: {_first_line(exc)}"
            raise CorruptEventError(entry.name, detail) from exc

    def is_known(self, type_name: str) -> bool:
        """Whether ``type_name`` is registered (the check behind ``skip_unknown=True``)."""
        return type_name in self.registry


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# Everything a read can raise about one stored value (the stores add the stream and position).
DECODE_ERRORS = (UnknownEventTypeError, MissingUpcasterError, CorruptEventError)
