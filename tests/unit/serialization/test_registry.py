from dataclasses import dataclass

import pytest

from dockyard.exceptions import EventTypeConflictError, MissingUpcasterError
from dockyard.serialization import JsonObject, TypeRegistry, event_type


@event_type("Thing", schema_version=3)
@dataclass(frozen=True)
class Thing:
    a: int
    b: int
    c: int


@dataclass(frozen=True)
class Other:
    x: int


def _module_b_thing() -> type:
    @event_type("Thing")
    @dataclass(frozen=True)
    class Thing:  # same stable name, different class
        a: int

    return Thing


def test_register_is_idempotent_and_maps_both_ways() -> None:
    registry = TypeRegistry([Thing, Thing, Other])
    assert len(registry) == 2
    entry = registry.get("Thing")
    assert entry is not None
    assert entry.cls is Thing
    assert entry.schema_version == 3
    assert registry.name_of(Other) == "Other"
    assert "Other" in registry
    assert "Missing" not in registry
    assert {e.name for e in registry} == {"Thing", "Other"}


def test_two_classes_with_one_name_conflict_with_both_paths_named() -> None:
    registry = TypeRegistry([Thing])
    with pytest.raises(EventTypeConflictError) as info:
        registry.register(_module_b_thing())
    message = str(info.value)
    assert "`Thing`" in message
    assert "test_registry.Thing" in message
    assert "_module_b_thing.<locals>.Thing" in message
    assert '@event_type("...")' in message


def test_upcasters_chain_in_version_order_and_may_precede_the_class() -> None:
    registry = TypeRegistry()
    calls: list[int] = []

    @registry.upcaster("Thing", from_version=2)
    def two_to_three(data: JsonObject) -> JsonObject:
        calls.append(2)
        return {**data, "c": data["a"] + data["b"]}

    entry = registry.register(Thing)

    @registry.upcaster(Thing, from_version=1)
    def one_to_two(data: JsonObject) -> JsonObject:
        calls.append(1)
        return {**data, "b": 10}

    assert registry.upcast(entry, {"a": 1}, 1) == {"a": 1, "b": 10, "c": 11}
    assert calls == [1, 2]
    assert registry.upcast(entry, {"a": 1, "b": 2, "c": 3}, 3) == {"a": 1, "b": 2, "c": 3}


def test_a_missing_step_names_the_version_and_the_fix() -> None:
    registry = TypeRegistry([Thing])
    registry.add_upcaster(Thing, 2, lambda d: d)
    entry = registry.entry_for(Thing)
    with pytest.raises(MissingUpcasterError) as info:
        registry.upcast(entry, {"a": 1}, 1)
    assert str(info.value) == (
        "Event `Thing` is stored at schema version 1, the code is at version 3, and there is "
        "no upcaster from version 1. Hint: register one with "
        "`registry.upcaster('Thing', from_version=1)`."
    )


def test_a_stored_version_newer_than_the_code_is_refused() -> None:
    registry = TypeRegistry([Thing])
    with pytest.raises(MissingUpcasterError, match="newer than this code's version 3"):
        registry.upcast(registry.entry_for(Thing), {}, 4)


def test_duplicate_or_invalid_upcasters_are_refused() -> None:
    registry = TypeRegistry([Thing])
    registry.add_upcaster("Thing", 1, lambda d: d)
    with pytest.raises(ValueError, match="already has an upcaster from version 1"):
        registry.add_upcaster("Thing", 1, lambda d: d)
    with pytest.raises(ValueError, match="1 or more"):
        registry.add_upcaster("Thing", 0, lambda d: d)
