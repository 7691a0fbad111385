from datetime import UTC, datetime
from uuid import uuid4

import pytest

from dockyard.eventsourcing import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    EventMetadata,
    RecordedEvent,
    stream_id_for,
)
from dockyard.exceptions import ConcurrencyError


class Order:
    pass


def test_streams_are_named_type_dash_id() -> None:
    assert stream_id_for(Order, 42) == "Order-42"
    assert stream_id_for("Cart", "c-1") == "Cart-c-1"


@pytest.mark.parametrize(
    ("expected", "actual", "text"),
    [
        (NO_STREAM, 3, "was expected at NO_STREAM (no stream yet) but is at version 3"),
        (STREAM_EXISTS, 0, "was expected at STREAM_EXISTS (an existing stream) but does not exist"),
        (7, 0, "was expected at version 7 but does not exist"),
    ],
)
def test_concurrency_errors_say_what_was_expected(expected: object, actual: int, text: str) -> None:
    assert f"Stream `Order-1` {text}. Hint:" in str(ConcurrencyError("Order-1", expected, actual))
    assert str(ANY) == "ANY"


def test_recorded_events_are_immutable_values() -> None:
    at = datetime.now(UTC)
    event_id = uuid4()

    def make() -> RecordedEvent:
        return RecordedEvent(event_id, "Order-1", 1, 9, "Placed", {"x": 1}, EventMetadata(at), at)

    event = make()
    assert event == make()
    assert event.metadata == EventMetadata(at, 1, None, None)
    with pytest.raises(AttributeError):
        event.stream_version = 2  # type: ignore[misc]
