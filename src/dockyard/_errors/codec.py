"""Values that cannot become bytes, and bytes that cannot become values again."""

from __future__ import annotations

from dockyard._errors.base import DockyardError

__all__ = [
    "CodecError",
    "CorruptEventError",
    "MissingUpcasterError",
    "SerializationError",
    "UnknownEventTypeError",
]


class CodecError(DockyardError):
    """An event, snapshot or message could not be encoded, or a stored or received one decoded."""


def _event_at(stream_id: str | None, stream_version: int | None, position: int | None) -> str:
    where = []
    if stream_version is not None:
        where.append(f"version {stream_version}")
    if position is not None:
        where.append(f"global position {position}")
    at = f" at {', '.join(where)}" if where else ""
    return f" in stream `{stream_id}`{at}" if stream_id is not None else at


class SerializationError(CodecError, TypeError):
    """An event, snapshot or message could not be encoded; nothing was written."""

    def __init__(
        self,
        event_type: str,
        detail: str,
        stream_id: str | None = None,
        stream_version: int | None = None,
    ) -> None:
        self.event_type = event_type
        self.detail = detail
        self.stream_id = stream_id
        self.stream_version = stream_version
        super().__init__(event_type, detail, stream_id, stream_version)

    def __str__(self) -> str:
        where = _event_at(self.stream_id, self.stream_version, None)
        nothing = " Nothing was appended." if self.stream_id is not None else ""
        return (
            f"Cannot serialize event `{self.event_type}`{where}: {self.detail}.{nothing} "
            "Hint: events must be dataclasses, msgspec Structs, attrs classes or pydantic "
            "models whose fields the codec can encode, or have a codec of their own "
            "(`TypeRegistry.register(cls, codec=...)`, `DictCodec()` for classes with "
            "`to_dict()`/`from_dict()`)."
        )


class UnknownEventTypeError(CodecError, LookupError):
    """A stored or received type name has no registered class."""

    def __init__(
        self,
        type_name: str,
        stream_id: str | None = None,
        stream_version: int | None = None,
        position: int | None = None,
    ) -> None:
        self.type_name = type_name
        self.stream_id = stream_id
        self.stream_version = stream_version
        self.position = position
        super().__init__(type_name, stream_id, stream_version, position)

    def __str__(self) -> str:
        where = _event_at(self.stream_id, self.stream_version, self.position)
        return (
            f"Unknown event type `{self.type_name}`{where}. Hint: register its class in the "
            f"`TypeRegistry` (declare `@event_type({self.type_name!r})` if the class is named "
            "differently), or read with `skip_unknown=True` to pass over it."
        )


class CorruptEventError(CodecError, ValueError):
    """A stored or received event cannot be decoded into its class."""

    def __init__(
        self,
        type_name: str,
        detail: str,
        stream_id: str | None = None,
        stream_version: int | None = None,
        position: int | None = None,
    ) -> None:
        self.type_name = type_name
        self.detail = detail
        self.stream_id = stream_id
        self.stream_version = stream_version
        self.position = position
        super().__init__(type_name, detail, stream_id, stream_version, position)

    def __str__(self) -> str:
        where = _event_at(self.stream_id, self.stream_version, self.position)
        return (
            f"Stored event `{self.type_name}`{where} cannot be decoded: {self.detail}. "
            "The other events are intact. Hint: repair the row, or add an upcaster if its "
            "shape changed without a schema version bump."
        )


class MissingUpcasterError(CodecError, LookupError):
    """No upcaster bridges a stored schema version to the code's version."""

    def __init__(
        self,
        type_name: str,
        stored_version: int,
        current_version: int,
        stream_id: str | None = None,
        stream_version: int | None = None,
        position: int | None = None,
    ) -> None:
        self.type_name = type_name
        self.stored_version = stored_version
        self.current_version = current_version
        self.stream_id = stream_id
        self.stream_version = stream_version
        self.position = position
        super().__init__(
            type_name, stored_version, current_version, stream_id, stream_version, position
        )

    def __str__(self) -> str:
        where = _event_at(self.stream_id, self.stream_version, self.position)
        head = f"Event `{self.type_name}`{where} is stored at schema version {self.stored_version}"
        if self.stored_version > self.current_version:
            return (
                f"{head}, newer than this code's version {self.current_version}. "
                "Hint: deploy the code that wrote it before reading it here."
            )
        return (
            f"{head}, the code is at version {self.current_version}, and there is no upcaster "
            f"from version {self.stored_version}. Hint: register one with "
            f"`registry.upcaster({self.type_name!r}, from_version={self.stored_version})`."
        )
