"""Codecs turn one value into bytes and back; JSON through msgspec unless the type is pydantic."""

from __future__ import annotations

import math
import sys
from typing import Any, Protocol, TypeVar

import msgspec

__all__ = [
    "Codec",
    "JsonObject",
    "MsgspecJsonCodec",
    "PydanticJsonCodec",
    "default_codec_for",
    "refuse_non_finite",
]

T = TypeVar("T")

# Stored event bodies are JSON objects whose shape is only known to upcasters: Any is the honest
# type for their values.
JsonObject = dict[str, Any]


class Codec(Protocol):
    """Encodes values of a class to bytes and decodes them back.

    ``to_object`` and ``from_object`` go through a plain JSON-like object, which is what
    upcasters work on. Errors: ``encode`` raises ``TypeError`` or ``ValueError`` for values it
    cannot encode, and for values it cannot encode exactly (the JSON codecs refuse NaN and
    infinite floats, which JSON would turn into ``null``: see ``refuse_non_finite``); the
    decoders raise ``ValueError`` (or a subclass) for bad input.
    """

    def encode(self, value: object) -> bytes: ...

    def decode(self, data: bytes, cls: type[T]) -> T: ...

    def to_object(self, data: bytes) -> JsonObject: ...

    def from_object(self, obj: JsonObject, cls: type[T]) -> T: ...


class MsgspecJsonCodec:
    """JSON via msgspec: dataclasses, msgspec Structs, attrs classes, TypedDicts and more."""

    __slots__ = ("_decoders", "_encoder", "_object_decoder")

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._object_decoder = msgspec.json.Decoder(dict[str, Any])
        self._decoders: dict[type, msgspec.json.Decoder[Any]] = {}

    def encode(self, value: object) -> bytes:
        data = self._encoder.encode(value)
        if b"null" in data:  # NaN and infinity come out as null; a bytes search is ~free
            refuse_non_finite(msgspec.to_builtins(value))
        return data

    def decoder_for(self, cls: type[T]) -> msgspec.json.Decoder[T]:
        """msgspec's decoder for ``cls`` (cached): it raises ``msgspec.DecodeError``.

        For loops over many stored values (replays); ``decode`` is the same with ``ValueError``.
        """
        decoder = self._decoders.get(cls)
        if decoder is None:
            decoder = self._decoders[cls] = msgspec.json.Decoder(cls)
        return decoder

    def decode(self, data: bytes, cls: type[T]) -> T:
        decoder = self.decoder_for(cls)
        try:
            result: T = decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise ValueError(str(exc)) from exc
        return result

    def to_object(self, data: bytes) -> JsonObject:
        try:
            result: JsonObject = self._object_decoder.decode(data)
        except msgspec.DecodeError as exc:
            raise ValueError(str(exc)) from exc
        return result

    def from_object(self, obj: JsonObject, cls: type[T]) -> T:
        try:
            return msgspec.convert(obj, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from exc


class PydanticJsonCodec:
    """JSON via pydantic's own serializer and validators, for ``pydantic.BaseModel`` types."""

    __slots__ = ("_object_codec",)

    def __init__(self) -> None:
        self._object_codec = MsgspecJsonCodec()

    def encode(self, value: object) -> bytes:
        serializer = getattr(type(value), "__pydantic_serializer__", None)
        if serializer is None:
            raise TypeError(f"{type(value).__qualname__} is not a pydantic model")
        try:
            data: bytes = serializer.to_json(value)
        except Exception as exc:  # pydantic raises its own serialization error types
            raise ValueError(str(exc)) from exc
        if b"null" in data:  # pydantic writes NaN and infinity as null too
            refuse_non_finite(value.model_dump())  # type: ignore[attr-defined]
        return data

    def decode(self, data: bytes, cls: type[T]) -> T:
        # pydantic's ValidationError subclasses ValueError, the codec contract.
        result: T = cls.model_validate_json(data)  # type: ignore[attr-defined]
        return result

    def to_object(self, data: bytes) -> JsonObject:
        return self._object_codec.to_object(data)

    def from_object(self, obj: JsonObject, cls: type[T]) -> T:
        result: T = cls.model_validate(obj)  # type: ignore[attr-defined]
        return result


def refuse_non_finite(builtins: object) -> None:
    """Raise ``ValueError`` naming the first NaN or infinite float in a value's builtins form.

    JSON has no NaN or infinity: encoders write ``null``, and the value would read back as
    ``None`` (a ``float | None`` field) or not at all (a ``float`` field). Refused at encode
    time, the writer hears of it instead of every later reader.
    """
    found = _non_finite(builtins, "")
    if found is None:
        return
    path, number = found
    where = f"field `{path}`" if path else "the value"
    raise ValueError(
        f"{where} is {number!r}, and JSON has no NaN or infinity: it would be stored as null "
        "and not read back as written (store None, or the number as a string)"
    )


def _non_finite(obj: object, path: str) -> tuple[str, float] | None:
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (path, obj)
    if isinstance(obj, dict):
        for key, item in obj.items():
            if isinstance(key, str):
                inner = f"{path}.{key}" if path else key
            else:
                inner = f"{path}[{key!r}]"
            found = _non_finite(item, inner)
            if found is not None:
                return found
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for index, item in enumerate(obj):
            found = _non_finite(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


_MSGSPEC = MsgspecJsonCodec()
_PYDANTIC = PydanticJsonCodec()


def default_codec_for(cls: type) -> Codec:
    """The codec dockyard uses for ``cls``: pydantic for pydantic models, msgspec otherwise."""
    pydantic = sys.modules.get("pydantic")  # a class can only be a model if pydantic is loaded
    if pydantic is not None and issubclass(cls, pydantic.BaseModel):
        return _PYDANTIC
    return _MSGSPEC
