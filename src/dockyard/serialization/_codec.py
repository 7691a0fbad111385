"""Codecs turn one value into bytes and back; JSON through msgspec unless the type is pydantic,
or the class declares (or a registry registers) a codec of its own."""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import msgspec
import msgspec.inspect

__all__ = [
    "JSON",
    "Codec",
    "DictCodec",
    "JsonObject",
    "MsgspecJsonCodec",
    "PydanticJsonCodec",
    "content_type_of",
    "default_codec_for",
    "refuse_non_finite",
]

JSON = "application/json"
CODEC_ATTRIBUTE = "__codec__"

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

    A codec may name the media type of its bytes in a ``content_type`` attribute (the JSON
    codecs: ``"application/json"``); messages carry it in their ``content-type`` header.
    Without one, ``"application/octet-stream"`` is sent.
    """

    def encode(self, value: object) -> bytes: ...

    def decode(self, data: bytes, cls: type[T]) -> T: ...

    def to_object(self, data: bytes) -> JsonObject: ...

    def from_object(self, obj: JsonObject, cls: type[T]) -> T: ...


class MsgspecJsonCodec:
    """JSON via msgspec: dataclasses, msgspec Structs, attrs classes, TypedDicts and more."""

    __slots__ = ("_decoders", "_encoder", "_object_decoder")

    content_type = JSON

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
        A class msgspec cannot build (not a dataclass, Struct, attrs class, …) raises
        ``TypeError`` saying to register a codec for it.
        """
        decoder = self._decoders.get(cls)
        if decoder is None:
            if isinstance(msgspec.inspect.type_info(cls), msgspec.inspect.CustomType):
                # msgspec would take it for a custom type and fail on every value
                raise TypeError(_no_shape(cls))
            decoder = self._decoders[cls] = msgspec.json.Decoder(cls)
        return decoder

    def decode(self, data: bytes, cls: type[T]) -> T:
        try:
            decoder = self.decoder_for(cls)
        except TypeError as exc:  # msgspec cannot decode this kind of class at all
            raise ValueError(str(exc)) from exc
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
            self.decoder_for(cls)  # cached: refuses a class msgspec cannot build
            return msgspec.convert(obj, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(str(exc)) from exc
        except TypeError as exc:
            raise ValueError(str(exc)) from exc


def _no_shape(cls: type) -> str:
    return (
        f"`{cls.__qualname__}` is not a dataclass, msgspec Struct, attrs class or pydantic "
        "model, and has no codec of its own: register one "
        f"(`TypeRegistry.register({cls.__name__}, codec=DictCodec())` for a class with "
        "`to_dict()`/`from_dict()`)"
    )


class PydanticJsonCodec:
    """JSON via pydantic's own serializer and validators, for ``pydantic.BaseModel`` types."""

    __slots__ = ("_object_codec",)

    content_type = JSON

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


class DictCodec:
    """JSON for classes that turn themselves into a dict and back: ``value.to_dict()`` and
    ``cls.from_dict(obj)``, or ``cls.from_dict(**obj)`` when ``from_dict`` takes keywords
    only (python-cqrs events and requests, and many hand-written classes).

    The dict is written with msgspec (its values must be JSON types, or types msgspec
    encodes); upcasters see the same dict. ``from_dict`` may raise ``TypeError``,
    ``KeyError`` or ``ValueError`` on a bad dict: they are reported as undecodable data.

    Example:
        ```python
        registry = TypeRegistry()
        registry.register(OrderPlaced, codec=DictCodec())
        ```
    """

    __slots__ = ("_by_keywords", "_json")

    content_type = JSON

    def __init__(self) -> None:
        self._json = MsgspecJsonCodec()
        self._by_keywords: dict[type, bool] = {}

    def encode(self, value: object) -> bytes:
        to_dict = getattr(value, "to_dict", None)
        if not callable(to_dict):
            raise TypeError(f"{type(value).__qualname__} has no to_dict() method (DictCodec)")
        return self._json.encode(to_dict())

    def decode(self, data: bytes, cls: type[T]) -> T:
        return self.from_object(self._json.to_object(data), cls)

    def to_object(self, data: bytes) -> JsonObject:
        return self._json.to_object(data)

    def from_object(self, obj: JsonObject, cls: type[T]) -> T:
        from_dict = getattr(cls, "from_dict", None)
        if not callable(from_dict):
            # ValueError, the decoders' contract: a reader's class, not the writer's value
            raise ValueError(f"{cls.__qualname__} has no from_dict() method (DictCodec)")  # noqa: TRY004
        by_keywords = self._by_keywords.get(cls)
        if by_keywords is None:
            by_keywords = self._by_keywords[cls] = _takes_keywords_only(from_dict)
        try:
            result = from_dict(**obj) if by_keywords else from_dict(obj)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            detail = f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ValueError(f"{cls.__qualname__}.from_dict() refused it: {detail}") from exc
        if not isinstance(result, cls):
            raise ValueError(  # noqa: TRY004 - the decoders' contract
                f"{cls.__qualname__}.from_dict() returned {type(result).__qualname__}, "
                f"not {cls.__qualname__}"
            )
        return result


def _takes_keywords_only(fn: Callable[..., object]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): pass the dict
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return not any(p.kind in positional or p.kind is p.VAR_POSITIONAL for p in parameters)


def content_type_of(codec: Codec) -> str:
    """The media type of ``codec``'s bytes (its ``content_type``, else octet-stream)."""
    declared = getattr(codec, "content_type", None)
    return declared if isinstance(declared, str) and declared else "application/octet-stream"


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
    """The codec dockyard uses for ``cls``: the one it declares (``@event_type(codec=...)``,
    or ``__codec__`` on it or a base), else pydantic's for pydantic models, protobuf's for
    protobuf messages (``dockyard[protobuf]``), msgspec otherwise."""
    declared: Codec | None = getattr(cls, CODEC_ATTRIBUTE, None)  # inherited, unlike names
    if declared is not None:
        return declared
    pydantic = sys.modules.get("pydantic")  # a class can only be a model if pydantic is loaded
    if pydantic is not None and issubclass(cls, pydantic.BaseModel):
        return _PYDANTIC
    protobuf = sys.modules.get("google.protobuf.message")  # likewise for protobuf messages
    if protobuf is not None and issubclass(cls, protobuf.Message):
        from dockyard.serialization.protobuf import ProtobufCodec

        return ProtobufCodec(cls)
    return _MSGSPEC
