"""The errors of input every event store refuses: messages as docs/errors.md shows them."""

import math
import pickle
from dataclasses import dataclass
from uuid import UUID

import pytest

from dockyard.eventsourcing import MAX_STREAM_ID_LENGTH, check_stream_id
from dockyard.exceptions import DuplicateEventIdError, InvalidStreamIdError, SerializationError
from dockyard.serialization import Serializer


def test_a_nul_in_a_stream_id_is_refused_as_documented() -> None:
    with pytest.raises(InvalidStreamIdError) as info:
        check_stream_id("Order-\x00-1")
    assert str(info.value) == (
        "Stream id `Order-\\x00-1` cannot be stored: it holds a NUL character at index 6. "
        "Hint: a stream id is 1 to 255 characters of Unicode text without NUL characters or "
        "lone surrogates, the same on every store; build it with `stream_id_for(kind, id)` "
        "from a short id."
    )


def test_a_long_stream_id_is_shown_cut_and_a_lone_surrogate_escaped() -> None:
    check_stream_id("é" * MAX_STREAM_ID_LENGTH)  # characters, not bytes
    with pytest.raises(InvalidStreamIdError) as long:
        check_stream_id("Order-" + "9" * 300)
    assert str(long.value).startswith(
        f"Stream id `Order-{'9' * 54}…` cannot be stored: it is 306 characters long, over the "
        "limit of 255."
    )
    with pytest.raises(InvalidStreamIdError) as surrogate:
        check_stream_id("Order-\udc80")
    assert "it holds a lone surrogate (\\udc80) at index 6" in str(surrogate.value)


def test_a_duplicate_event_id_reads_as_documented() -> None:
    event_id = UUID("7f1c0000-0000-4000-8000-000000000000")
    assert str(DuplicateEventIdError(event_id, "Order-2")) == (
        f"Event id `{event_id}` is already stored, so the append to stream `Order-2` was "
        "refused and nothing was appended. Hint: event ids are unique across all streams; let "
        "the store make them (leave out `NewEvent(event_id=...)`), or pass `idempotency_key=` "
        "so that a retried append is a no-op."
    )


@pytest.mark.parametrize(
    "error",
    [
        InvalidStreamIdError("x" * 300, "it is 300 characters long, over the limit of 255"),
        InvalidStreamIdError(42, "it is a `int`, not a string"),
        DuplicateEventIdError(UUID(int=7), "Order-2"),
        DuplicateEventIdError(UUID(int=7), "Order-2", within_append=True),
    ],
)
def test_the_errors_survive_a_process_boundary(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


@dataclass(frozen=True)
class Reading:
    value: float
    unit: str | None = None


@dataclass(frozen=True)
class Series:
    readings: list[Reading]
    by_name: dict[str, float]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (Reading(math.nan), "`value` is nan"),
        (Series([Reading(1.0), Reading(-math.inf)], {}), "`readings[1].value` is -inf"),
        (Series([], {"a": 1.0, "b": math.inf}), "`by_name.b` is inf"),
    ],
)
def test_non_finite_floats_are_refused_by_the_serializer_naming_the_field(
    value: object, field: str
) -> None:
    with pytest.raises(SerializationError) as info:
        Serializer().serialize(value)
    assert f"field {field}, and JSON has no NaN or infinity" in str(info.value)


def test_null_in_an_encoded_body_is_fine_when_no_float_is_odd() -> None:
    stored = Serializer().serialize(Series([Reading(1.5), Reading(2.0, "null")], {"n": 0.0}))
    assert b"null" in stored.data


def test_pydantic_models_are_held_to_the_same_rule() -> None:
    pydantic = pytest.importorskip("pydantic")

    class Priced(pydantic.BaseModel):  # type: ignore[misc, name-defined]
        sku: str
        prices: list[float]

    with pytest.raises(SerializationError) as info:
        Serializer().serialize(Priced(sku="a", prices=[1.0, math.nan]))
    assert "field `prices[1]` is nan" in str(info.value)
