from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass

import attrs
import msgspec
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.exceptions import (
    CorruptEventError,
    MissingUpcasterError,
    SerializationError,
    UnknownEventTypeError,
)
from dockyard.serialization import (
    JsonObject,
    MsgspecJsonCodec,
    PydanticJsonCodec,
    Serializer,
    TypeRegistry,
    Upcaster,
    default_codec_for,
    event_type,
)


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class DataclassEvent:
    order_id: uuid.UUID
    note: str
    amount: float
    at: dt.datetime
    lines: list[Line]
    coupon: str | None = None


class StructEvent(msgspec.Struct, frozen=True):
    order_id: uuid.UUID
    note: str
    amount: float
    at: dt.datetime
    lines: list[Line]
    coupon: str | None = None


@attrs.frozen
class AttrsEvent:
    order_id: uuid.UUID
    note: str
    amount: float
    at: dt.datetime
    lines: list[Line]
    coupon: str | None = None


class PydanticEvent(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)
    order_id: uuid.UUID
    note: str
    amount: float
    at: dt.datetime
    lines: list[Line]
    coupon: str | None = None


EVENT_CLASSES = (DataclassEvent, StructEvent, AttrsEvent, PydanticEvent)

fields = st.fixed_dictionaries(
    {
        "order_id": st.uuids(),
        "note": st.text(),
        "amount": st.floats(allow_nan=False, allow_infinity=False),
        "at": st.datetimes(timezones=st.just(dt.UTC)),
        "lines": st.lists(
            st.builds(Line, sku=st.text(), quantity=st.integers(-(2**63), 2**63 - 1))
        ),
        "coupon": st.none() | st.text(min_size=1),
    }
)


@given(cls=st.sampled_from(EVENT_CLASSES), values=fields)
def test_every_supported_kind_of_class_round_trips(cls: type, values: dict[str, object]) -> None:
    serializer = Serializer()
    event = cls(**values)
    stored = serializer.serialize(event)
    assert stored.type_name == cls.__name__
    assert stored.schema_version == 1
    assert serializer.deserialize(stored.type_name, 1, stored.data) == event


def test_pydantic_models_go_through_pydantic_and_the_rest_through_msgspec() -> None:
    assert isinstance(default_codec_for(PydanticEvent), PydanticJsonCodec)
    for cls in (DataclassEvent, StructEvent, AttrsEvent):
        assert isinstance(default_codec_for(cls), MsgspecJsonCodec)


def test_the_stored_bytes_are_plain_json_under_the_stable_name() -> None:
    @event_type("order.note-added")
    @dataclass(frozen=True)
    class NoteAdded:
        text: str

    stored = Serializer().serialize(NoteAdded("héllo ✓"))
    assert stored.type_name == "order.note-added"
    assert msgspec.json.decode(stored.data) == {"text": "héllo ✓"}


@event_type("Money", schema_version=3)
@dataclass(frozen=True)
class Money:
    cents: int
    currency: str
    source: str


def _money_registry() -> TypeRegistry:
    registry = TypeRegistry([Money])

    @registry.upcaster(Money, from_version=1)
    def euros_to_cents(data: JsonObject) -> JsonObject:
        return {"cents": round(data["euros"] * 100)}

    @registry.upcaster(Money, from_version=2)
    def add_currency(data: JsonObject) -> JsonObject:
        return {**data, "currency": "EUR", "source": "upcast"}

    return registry


@given(cents=st.integers(-(10**12), 10**12))
def test_upcasters_bring_every_stored_version_to_the_current_class(cents: int) -> None:
    serializer = Serializer(_money_registry())
    v1 = msgspec.json.encode({"euros": cents / 100})
    v2 = msgspec.json.encode({"cents": cents})
    expected = Money(cents, "EUR", "upcast")
    assert serializer.deserialize("Money", 1, v1) == expected
    assert serializer.deserialize("Money", 2, v2) == expected
    current = serializer.serialize(Money(cents, "USD", "new"))
    assert current.schema_version == 3
    assert serializer.deserialize("Money", 3, current.data) == Money(cents, "USD", "new")


def _append_to_trail(version: int) -> Upcaster:
    def step(data: JsonObject) -> JsonObject:
        return {"trail": [*data["trail"], version]}

    return step


@given(steps=st.integers(1, 8), start=st.data())
def test_a_chain_of_any_length_applies_each_step_once_in_order(
    steps: int, start: st.DataObject
) -> None:
    @event_type("Counter", schema_version=steps + 1)
    @dataclass(frozen=True)
    class Counter:
        trail: list[int]

    registry = TypeRegistry([Counter])
    for version in range(1, steps + 1):
        registry.add_upcaster(Counter, version, _append_to_trail(version))
    stored_at = start.draw(st.integers(1, steps + 1))
    decoded = Serializer(registry).deserialize("Counter", stored_at, b'{"trail":[]}')
    assert decoded == Counter(list(range(stored_at, steps + 1)))


def test_an_unknown_type_is_a_lookup_error_with_the_fix() -> None:
    with pytest.raises(UnknownEventTypeError) as info:
        Serializer().deserialize("Gone", 1, b"{}")
    assert isinstance(info.value, LookupError)
    assert "Unknown event type `Gone`" in str(info.value)
    assert "skip_unknown=True" in str(info.value)


@pytest.mark.parametrize("cls", EVENT_CLASSES)
def test_bytes_that_do_not_fit_the_class_are_corrupt(cls: type) -> None:
    serializer = Serializer(TypeRegistry([cls]))
    for garbage in (b"\xff not json", b'{"note": 1}'):
        with pytest.raises(CorruptEventError) as info:
            serializer.deserialize(cls.__name__, 1, garbage)
        assert isinstance(info.value, ValueError)
        assert f"`{cls.__name__}`" in str(info.value)


def test_corrupt_bytes_on_the_upcasting_path_are_corrupt_too() -> None:
    serializer = Serializer(_money_registry())
    with pytest.raises(CorruptEventError, match="cannot be decoded"):
        serializer.deserialize("Money", 2, b"[[[")
    with pytest.raises(CorruptEventError, match="after upcasting from schema version 2"):
        serializer.deserialize("Money", 2, b'{"cents": "many"}')
    with pytest.raises(MissingUpcasterError):
        serializer.deserialize("Money", 4, b"{}")


class Unencodable:
    pass


@dataclass(frozen=True)
class HoldsAnything:
    value: object


@pytest.mark.parametrize("value", [Unencodable(), math.nan + 1j, {1, 2}.__iter__()])
def test_values_the_codec_cannot_encode_raise_serialization_error(value: object) -> None:
    with pytest.raises(SerializationError) as info:
        Serializer().serialize(HoldsAnything(value))
    assert isinstance(info.value, TypeError)
    assert str(info.value).startswith("Cannot serialize event `HoldsAnything`: ")


def test_pydantic_serialization_failures_are_serialization_errors() -> None:
    class Strict(pydantic.BaseModel):
        value: object

    with pytest.raises(SerializationError, match="`Strict`"):
        Serializer().serialize(Strict(value=Unencodable()))
