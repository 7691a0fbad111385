"""Stable names and schema versions for event (and snapshot) classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from dockyard.serialization._codec import CODEC_ATTRIBUTE, Codec

__all__ = ["event_type", "schema_version_of", "type_name_of"]

T = TypeVar("T", bound=type)

TYPE_NAME_ATTRIBUTE = "__event_type__"
SCHEMA_VERSION_ATTRIBUTE = "__schema_version__"


def event_type(
    name: str | None = None, *, schema_version: int = 1, codec: Codec | None = None
) -> Callable[[T], T]:
    """Declare the stable name, schema version and codec stored with a class's instances.

    The name is what the store writes next to each event, so renaming or moving the class
    later does not orphan stored events. Without a declaration the class name is used (never
    the import path). Writing the class attributes ``__event_type__``,
    ``__schema_version__`` and ``__codec__`` by hand is equivalent.

    Args:
        name: The stable type name; defaults to the class name.
        schema_version: Bump it when the stored shape changes and register an upcaster from
            the previous version.
        codec: How its instances become bytes, wherever they go (event store, snapshots,
            outbox, consumers); by default msgspec JSON, or pydantic's for pydantic models.
            Declared on the class, it holds in every ``TypeRegistry`` of every app. Unlike
            the name and the version, subclasses inherit it.

    Returns:
        A class decorator that sets the two attributes and returns the class unchanged.
    """
    if name is not None and not name.strip():
        raise ValueError("An event type name cannot be empty.")
    if schema_version < 1:
        raise ValueError(f"schema_version must be 1 or more, got {schema_version}.")

    def decorate(cls: T) -> T:
        setattr(cls, TYPE_NAME_ATTRIBUTE, name or cls.__name__)
        setattr(cls, SCHEMA_VERSION_ATTRIBUTE, schema_version)
        if codec is not None:
            setattr(cls, CODEC_ATTRIBUTE, codec)
        return cls

    return decorate


def type_name_of(cls: type) -> str:
    """The stable type name declared on ``cls`` (not inherited), else its class name."""
    declared = vars(cls).get(TYPE_NAME_ATTRIBUTE)
    return declared if isinstance(declared, str) else cls.__name__


def schema_version_of(cls: type) -> int:
    """The schema version declared on ``cls`` (not inherited), else 1."""
    declared = vars(cls).get(SCHEMA_VERSION_ATTRIBUTE)
    return declared if isinstance(declared, int) else 1
