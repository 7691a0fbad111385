"""The registry of stable type names, their classes, schema versions and upcasters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from dockyard.exceptions import EventTypeConflictError, MissingUpcasterError
from dockyard.serialization._codec import Codec, JsonObject, content_type_of, default_codec_for
from dockyard.serialization._names import schema_version_of, type_name_of

__all__ = ["RegisteredType", "TypeRegistry", "Upcaster"]

Upcaster = Callable[[JsonObject], JsonObject]
"""Turns the stored JSON object of schema version ``n`` into the shape of version ``n + 1``."""


@dataclass(frozen=True, slots=True)
class RegisteredType:
    """One registered class: its stable name, current schema version and codec."""

    cls: type
    name: str
    schema_version: int
    codec: Codec
    upcasters: dict[int, Upcaster] = field(default_factory=dict, compare=False, hash=False)
    content_type: str = field(init=False, compare=False)
    """The media type of the codec's bytes (the ``content-type`` header of messages)."""

    def __post_init__(self) -> None:
        # read once: every message written asks for it
        object.__setattr__(self, "content_type", content_type_of(self.codec))


class TypeRegistry:
    """Maps stable type names to classes and chains upcasters by schema version.

    Example:
        ```python
        registry = TypeRegistry([OrderPlaced, OrderShipped])


        @registry.upcaster(OrderPlaced, from_version=1)
        def add_currency(data: JsonObject) -> JsonObject:
            return {**data, "currency": "EUR"}
        ```
    """

    __slots__ = ("_by_name", "_by_type", "_chosen_codecs", "_pending")

    def __init__(self, types: Iterable[type] = ()) -> None:
        self._by_name: dict[str, RegisteredType] = {}
        self._by_type: dict[type, RegisteredType] = {}
        self._chosen_codecs: set[type] = set()  # classes registered with codec=...
        # Upcasters may be registered before their class (by name); they attach on register.
        self._pending: dict[str, dict[int, Upcaster]] = {}
        for cls in types:
            self.register(cls)

    def register(
        self, cls: type, *, name: str | None = None, codec: Codec | None = None
    ) -> RegisteredType:
        """Register ``cls`` under its declared name (or ``name``); idempotent for one class.

        Args:
            cls: The class.
            name: Its stable name, if not the declared one (``@event_type``) or class name.
            codec: How its values are encoded and decoded everywhere this registry is used
                (event store, snapshots, outbox, consumers, upcasting); by default the one
                ``default_codec_for`` picks. Registering a codec replaces the default one
                (a class already used with it keeps its upcasters).

        Raises:
            EventTypeConflictError: another class is registered under the same name.
            ValueError: ``cls`` was registered with another codec before.
        """
        known = self._by_type.get(cls)
        if known is not None and codec is not None and codec is not known.codec:
            if cls not in self._chosen_codecs:
                known = None  # the default codec gives way to the chosen one
            elif type(codec) is not type(known.codec):
                raise ValueError(
                    f"`{known.name}` is registered with codec {type(known.codec).__name__} "
                    f"already; it cannot take {type(codec).__name__} as well."
                )
        if known is not None and (name is None or name == known.name):
            if codec is not None:
                self._chosen_codecs.add(cls)
            return known
        previous = self._by_type.get(cls)
        name = name or (previous.name if previous is not None else type_name_of(cls))
        other = self._by_name.get(name)
        if other is not None and other.cls is not cls:
            raise EventTypeConflictError(name, other.cls, cls)
        if previous is not None and previous.name == name:
            upcasters = previous.upcasters
        else:
            upcasters = self._pending.pop(name, {})
        if codec is None:
            codec = previous.codec if previous is not None else default_codec_for(cls)
        else:
            self._chosen_codecs.add(cls)
        entry = RegisteredType(
            cls=cls,
            name=name,
            schema_version=schema_version_of(cls),
            codec=codec,
            upcasters=upcasters,
        )
        self._by_name[name] = entry
        self._by_type[cls] = entry
        return entry

    def upcaster(self, event: type | str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator registering ``fn`` to upcast ``event`` from ``from_version`` to the next."""

        def decorate(fn: Upcaster) -> Upcaster:
            self.add_upcaster(event, from_version, fn)
            return fn

        return decorate

    def add_upcaster(self, event: type | str, from_version: int, fn: Upcaster) -> None:
        """Register ``fn`` to turn version ``from_version`` of ``event`` into the next version."""
        if from_version < 1:
            raise ValueError(f"from_version must be 1 or more, got {from_version}.")
        name = event if isinstance(event, str) else self.register(event).name
        entry = self._by_name.get(name)
        chain = entry.upcasters if entry is not None else self._pending.setdefault(name, {})
        if from_version in chain:
            raise ValueError(f"`{name}` already has an upcaster from version {from_version}.")
        chain[from_version] = fn

    def get(self, name: str) -> RegisteredType | None:
        """The registration for a stored type name, or ``None`` if the name is unknown."""
        return self._by_name.get(name)

    def entry_for(self, cls: type) -> RegisteredType:
        """The registration for ``cls``, registering it under its declared name if needed."""
        entry = self._by_type.get(cls)
        return entry if entry is not None else self.register(cls)

    def name_of(self, cls: type) -> str:
        """The stable name ``cls`` is stored under."""
        return self.entry_for(cls).name

    def upcast(self, entry: RegisteredType, obj: JsonObject, stored_version: int) -> JsonObject:
        """Apply the chain of upcasters from ``stored_version`` up to the current version.

        Raises:
            MissingUpcasterError: a step of the chain is missing, or the stored version is
                newer than the class.
        """
        if stored_version > entry.schema_version:
            raise MissingUpcasterError(entry.name, stored_version, entry.schema_version)
        for version in range(stored_version, entry.schema_version):
            step = entry.upcasters.get(version)
            if step is None:
                raise MissingUpcasterError(entry.name, version, entry.schema_version)
            obj = step(obj)
        return obj

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[RegisteredType]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)
