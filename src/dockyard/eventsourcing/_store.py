"""The ``EventStore`` port and the values that cross it."""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol, runtime_checkable
from uuid import UUID, uuid4

import msgspec

from dockyard.exceptions import InvalidStreamIdError

__all__ = [
    "ANY",
    "MAX_STREAM_ID_LENGTH",
    "NO_STREAM",
    "STREAM_EXISTS",
    "AppendResult",
    "EventMetadata",
    "EventStore",
    "ExpectedVersion",
    "LogHeadReader",
    "NewEvent",
    "OpenAppend",
    "RecordedEvent",
    "check_stream_id",
    "stream_id_for",
]


class ExpectedVersion(enum.Enum):
    """What an append expects of the stream when it is not an exact version."""

    NO_STREAM = "NO_STREAM"
    """The stream must not exist yet (same as the exact version ``0``)."""
    STREAM_EXISTS = "STREAM_EXISTS"
    """The stream must exist, at any version."""
    ANY = "ANY"
    """No check: append after whatever is there."""

    def __str__(self) -> str:
        return _EXPECTED_TEXT[self]


_EXPECTED_TEXT = {
    ExpectedVersion.NO_STREAM: "NO_STREAM (no stream yet)",
    ExpectedVersion.STREAM_EXISTS: "STREAM_EXISTS (an existing stream)",
    ExpectedVersion.ANY: "ANY",
}

NO_STREAM: Final = ExpectedVersion.NO_STREAM
STREAM_EXISTS: Final = ExpectedVersion.STREAM_EXISTS
ANY: Final = ExpectedVersion.ANY


def stream_id_for(kind: str | type, entity_id: object) -> str:
    """The conventional stream name ``"{type}-{id}"``, e.g. ``stream_id_for(Order, 42)``."""
    name = kind if isinstance(kind, str) else kind.__name__
    return f"{name}-{entity_id}"


MAX_STREAM_ID_LENGTH: Final = 255
"""The longest stream id, in characters (code points), that every store holds."""


def check_stream_id(stream_id: object) -> None:
    """Refuse a stream id that some store cannot hold, on every store alike.

    The rule: a string of 1 to ``MAX_STREAM_ID_LENGTH`` characters, without NUL characters or
    lone surrogates (PostgreSQL refuses both; UTF-8 cannot encode a lone surrogate). Every
    ``EventStore`` adapter calls this before it touches a stream, so an id that works in a
    test on the in-memory store works in production on PostgreSQL.

    Raises:
        InvalidStreamIdError: naming the id and the part of the rule it breaks.
    """
    # the common case costs a few comparisons; only a refused id pays for the explanation
    if (
        isinstance(stream_id, str)
        and 0 < len(stream_id) <= MAX_STREAM_ID_LENGTH
        and "\x00" not in stream_id
        and (stream_id.isascii() or not _has_surrogate(stream_id))
    ):
        return
    raise InvalidStreamIdError(stream_id, _stream_id_problem(stream_id))


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _stream_id_problem(stream_id: object) -> str:
    if not isinstance(stream_id, str):
        return f"it is a `{type(stream_id).__name__}`, not a string"
    if not stream_id:
        return "it is empty"
    if len(stream_id) > MAX_STREAM_ID_LENGTH:
        return f"it is {len(stream_id)} characters long, over the limit of {MAX_STREAM_ID_LENGTH}"
    if "\x00" in stream_id:
        return f"it holds a NUL character at index {stream_id.index(chr(0))}"
    index, char = next((i, c) for i, c in enumerate(stream_id) if "\ud800" <= c <= "\udfff")
    return (
        f"it holds a lone surrogate ({repr(char)[1:-1]}) at index {index}, which is not "
        "Unicode text and cannot be encoded as UTF-8"
    )


# EventMetadata and RecordedEvent are built once per event read: a replay of 1,000 events makes
# 2,000 of them. Frozen msgspec Structs construct much faster than frozen dataclasses and
# behave the same for users (immutable, slotted, compared by value). ``gc=False`` keeps
# them out of the cycle collector, which otherwise ran during long replays (figures for both:
# docs/event-store.md, "Benchmarks"): they are immutable and nothing they hold points back at
# them, so they can never be part of a reference cycle.
class EventMetadata(msgspec.Struct, frozen=True, gc=False):
    """What the store records about an event besides its data."""

    timestamp: datetime
    """When the event happened (set by the writer; defaults to the append time)."""
    schema_version: int = 1
    """The schema version the data was written at (before any upcasting)."""
    correlation_id: str | None = None
    """The id shared by everything one request or conversation caused."""
    causation_id: str | None = None
    """The id of the message that directly caused this event."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append with an explicit id or metadata; plain events get defaults."""

    event: object
    event_id: UUID = field(default_factory=uuid4)
    correlation_id: str | None = None
    causation_id: str | None = None
    timestamp: datetime | None = None


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as stored: its identity, place in the stream and in the global log."""

    event_id: UUID
    stream_id: str
    stream_version: int
    """1 for the first event of a stream, then 2, 3, …; gap-free within the stream."""
    global_position: int
    """Orders all events of the store; increasing, not contiguous."""
    type_name: str
    data: object
    """The decoded (and upcast) event."""
    metadata: EventMetadata
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an append put its events; ``last_version`` is the next expected version."""

    stream_id: str
    first_version: int
    last_version: int
    first_position: int
    last_position: int


@dataclass(frozen=True, slots=True)
class OpenAppend:
    """A transaction that appended events and has not ended yet (PostgreSQL).

    Until it ends, readers of the global log stop below ``position_bound``: it could still
    commit events there. One that stays open holds every catch-up projection back.
    """

    position_bound: int
    """No event of this transaction has a global position below this."""
    pid: int
    """The server process of its session (``pg_stat_activity.pid``)."""
    age: float
    """Seconds since its transaction began."""
    state: str
    """``pg_stat_activity.state``: ``"active"``, ``"idle in transaction"``, ..."""
    application_name: str


class EventStore(Protocol):
    """Append-only streams of events with optimistic concurrency and one global order.

    Adapters: ``InMemoryEventStore`` (``dockyard.eventsourcing.memory``) and ``SqlEventStore``
    (``dockyard.sql``, SQLite and PostgreSQL). Every adapter passes
    ``dockyard.testing.contracts.EventStoreContract``.
    An adapter that can tell the head of its global log from an index also implements the
    optional ``LogHeadReader`` port; both of dockyard's adapters do.
    """

    async def append(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int | ExpectedVersion,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append ``events`` (plain events or ``NewEvent`` wrappers) to the end of a stream.

        Args:
            stream_id: The stream, named ``"{type}-{id}"`` by convention.
            events: At least one event.
            expected_version: The exact version the stream must be at (``0`` means no stream),
                or ``NO_STREAM``, ``STREAM_EXISTS``, ``ANY``.
            idempotency_key: If an append to this stream with the same key already
                succeeded, nothing is written and its result is returned again.

        Raises:
            ConcurrencyError: the stream is not at ``expected_version``.
            StreamDeletedError: the stream was deleted.
            SerializationError: an event cannot be encoded; nothing is written.
        """
        ...

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 0,
        limit: int | None = None,
        backwards: bool = False,
        *,
        skip_unknown: bool = False,
    ) -> Sequence[RecordedEvent]:
        """Read a stream in version order; an unknown stream reads as empty.

        Forwards, events with version ``>= from_version``. Backwards, newest first, events with
        version ``<= from_version``, where ``0`` means from the end.

        Raises:
            StreamDeletedError: the stream was deleted.
            UnknownEventTypeError: a stored type is not registered (unless ``skip_unknown``).
            CorruptEventError: a stored event cannot be decoded.
        """
        ...

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        event_types: Collection[str | type] | None = None,
        *,
        skip_unknown: bool = False,
    ) -> Sequence[RecordedEvent]:
        """Read the global log after a position, in position order, at most ``limit`` events.

        A reader that passes the last position it saw as ``after_position`` never skips an
        event and never sees one twice, even with concurrent writers. A committed event may
        show up a little later than its commit: on PostgreSQL, once every older writing
        transaction has finished too.

        Args:
            after_position: Return events after this global position (``0``: from the start).
            limit: The most events to return.
            event_types: Only these types (classes or stable names).
            skip_unknown: Pass over events whose type is not registered instead of failing.
        """
        ...

    async def delete_stream(self, stream_id: str) -> None:
        """Delete a stream's events and leave a tombstone: later appends and reads fail."""
        ...

    async def truncate_before(self, stream_id: str, version: int) -> None:
        """Delete the events of a stream below ``version``; the stream's version is kept."""
        ...


@runtime_checkable
class LogHeadReader(Protocol):
    """An ``EventStore`` that knows where its global log ends (optional; projections use it).

    Catch-up runners need the position of the newest *final* event (no event below it can
    still appear) to move a filtered projection's checkpoint past events it does not handle,
    and ``ProjectionControl`` reports lag as a count of events. Any store answers both by
    scanning ``read_all`` page by page; a store that can answer from an index implements these
    three methods and gets that fast path (``InMemoryEventStore`` and ``SqlEventStore`` do).
    Projections check for it with ``isinstance``, once per store class.
    """

    async def log_heads(self) -> tuple[int, int]:
        """``(final, committed)``: the global position of the newest final event, and of the
        newest committed one, final or not; ``0`` for an empty log.

        They differ only on a store where a reader may wait for a writer (PostgreSQL: an
        event is final once every transaction that appended before it has ended).
        """
        ...

    async def count_after(self, position: int) -> int:
        """How many final events have a global position above ``position``."""
        ...

    async def held_back_by(self) -> OpenAppend | None:
        """The open transaction that keeps committed events from being final, if one does
        (the oldest, when several); ``None`` on a store where readers never wait."""
        ...
