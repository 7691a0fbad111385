"""What every adapter shares: turning appended events into rows and rows back into events."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID, SafeUUID

import msgspec

from dockyard.eventsourcing._store import (
    EventMetadata,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    check_stream_id,
)
from dockyard.eventsourcing._store_snapshots import Snapshot
from dockyard.exceptions import (
    ConcurrencyError,
    CorruptEventError,
    DuplicateEventIdError,
    MissingUpcasterError,
    SerializationError,
    UnknownEventTypeError,
)
from dockyard.serialization import MsgspecJsonCodec, RegisteredType, Serializer
from dockyard.serialization._serializer import DECODE_ERRORS

__all__ = [
    "EventRow",
    "check_expected_version",
    "decode_event",
    "decode_rows",
    "decode_snapshot",
    "encode_events",
    "type_names",
]

S = TypeVar("S")
logger = logging.getLogger("dockyard.eventsourcing")


class EventRow(msgspec.Struct, frozen=True, gc=False):
    """One event ready to store (the stream version and position are the adapter's job)."""

    # gc=False: only ids, strings, numbers, bytes and datetimes, so never part of a cycle;
    # an append of many events then does not wake the garbage collector for them.

    event_id: UUID
    type_name: str
    schema_version: int
    data: bytes
    correlation_id: str | None
    causation_id: str | None
    occurred_at: datetime


def encode_events(
    serializer: Serializer,
    stream_id: str,
    events: Sequence[object],
    expected_version: int | ExpectedVersion,
    recorded_at: datetime,
) -> list[EventRow]:
    """Check the stream id and serialize every event before anything is written, naming the
    culprit on failure.

    Raises:
        InvalidStreamIdError: the stream id breaks ``check_stream_id``'s rule.
        DuplicateEventIdError: two ``NewEvent`` items of the append carry one id.
        SerializationError: an event cannot be encoded (NaN and infinite floats included).
    """
    check_stream_id(stream_id)
    if not events:
        raise ValueError(f"Append to stream `{stream_id}` needs at least one event.")
    rows: list[EventRow] = []
    entry_for = serializer.registry.entry_for
    new_ids = _new_event_ids(len(events))
    given: set[UUID] | None = None  # the ids callers chose: only they can repeat
    for index, item in enumerate(events):
        if isinstance(item, NewEvent):
            event, event_id = item.event, item.event_id
            if given is None:
                given = set()
            elif event_id in given:
                raise DuplicateEventIdError(event_id, stream_id, within_append=True)
            given.add(event_id)
            correlation_id, causation_id = item.correlation_id, item.causation_id
            occurred_at = item.timestamp or recorded_at
        else:
            event, event_id, correlation_id, causation_id = item, new_ids[index], None, None
            occurred_at = recorded_at
        try:
            entry = entry_for(type(event))
            try:
                data = entry.codec.encode(event)
            except (TypeError, ValueError, OverflowError):
                serializer.serialize(event)  # raises the SerializationError, worded in one place
                raise
        except SerializationError as exc:
            version = expected_version + index + 1 if isinstance(expected_version, int) else None
            detail = exc.detail
            if version is None:
                detail = f"event {index + 1} of {len(events)} in the append: {detail}"
            raise SerializationError(exc.event_type, detail, stream_id, version) from exc
        rows.append(
            EventRow(
                event_id=event_id,
                type_name=entry.name,
                schema_version=entry.schema_version,
                data=data,
                correlation_id=correlation_id,
                causation_id=causation_id,
                occurred_at=occurred_at,
            )
        )
    return rows


_new = object.__new__
_set = object.__setattr__
_RANDOM_BITS = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4 = (4 << 76) | (0x8000 << 48)


def _new_event_ids(count: int) -> list[UUID]:
    """``count`` random (version 4) UUIDs, as ``uuid4()`` makes them, from one read of urandom.

    ``uuid4()`` reads 16 bytes per call and validates its arguments; for a batch of events
    that was most of the cost of encoding them.
    """
    random = os.urandom(16 * count)
    ids: list[UUID] = []
    for start in range(0, 16 * count, 16):
        uuid = _new(UUID)
        _set(uuid, "int", int.from_bytes(random[start : start + 16]) & _RANDOM_BITS | _VERSION_4)
        _set(uuid, "is_safe", SafeUUID.unknown)
        ids.append(uuid)
    return ids


def check_expected_version(
    stream_id: str, expected: int | ExpectedVersion, current: int, *, exists: bool
) -> None:
    """Raise ``ConcurrencyError`` unless a stream at ``current`` satisfies ``expected``."""
    if expected is ExpectedVersion.ANY:
        return
    if expected is ExpectedVersion.STREAM_EXISTS:
        ok = exists
    elif expected is ExpectedVersion.NO_STREAM:
        ok = not exists
    else:
        ok = current == expected
    if not ok:
        raise ConcurrencyError(stream_id, expected, current)


def decode_event(
    serializer: Serializer,
    *,
    global_position: int,
    event_id: UUID,
    stream_id: str,
    stream_version: int,
    type_name: str,
    schema_version: int,
    data: bytes,
    correlation_id: str | None,
    causation_id: str | None,
    occurred_at: datetime,
    recorded_at: datetime,
    skip_unknown: bool,
) -> RecordedEvent | None:
    """Decode one stored event; ``None`` if it is unknown and the reader skips unknowns.

    Raises:
        UnknownEventTypeError, MissingUpcasterError, CorruptEventError: naming the stream,
            the version and the global position of the event.
    """
    entry = serializer.registry.get(type_name)
    if entry is None:
        if skip_unknown:
            return None
        raise UnknownEventTypeError(type_name, stream_id, stream_version, global_position)
    try:
        event = serializer.decode_as(entry, schema_version, data)
    except CorruptEventError as exc:
        raise CorruptEventError(
            type_name, exc.detail, stream_id, stream_version, global_position
        ) from exc
    except MissingUpcasterError as exc:
        raise MissingUpcasterError(
            type_name,
            exc.stored_version,
            exc.current_version,
            stream_id,
            stream_version,
            global_position,
        ) from exc
    return RecordedEvent(
        event_id=event_id,
        stream_id=stream_id,
        stream_version=stream_version,
        global_position=global_position,
        type_name=type_name,
        data=event,
        metadata=EventMetadata(
            timestamp=_aware(occurred_at),
            schema_version=schema_version,
            correlation_id=correlation_id,
            causation_id=causation_id,
        ),
        recorded_at=_aware(recorded_at),
    )


def decode_rows(
    serializer: Serializer, rows: Iterable[Sequence[Any]], skip_unknown: bool
) -> list[RecordedEvent]:
    """Decode stored rows in the column order of ``dockyard_events``; the replay hot path.

    Equivalent to ``decode_event`` per row; rows at the current schema version are decoded
    straight from bytes, and anything unusual (unknown type, upcasting, a decoding error)
    takes ``decode_event``, which builds the errors with the stream and position.
    """
    registry = serializer.registry
    decoders: dict[str, tuple[int, Callable[[bytes], object]] | None] = {}
    decoded: list[RecordedEvent] = []
    append = decoded.append
    metadata = EventMetadata(_EPOCH, 0)
    for row in rows:
        (position, event_id, stream_id, version, type_name, schema_version, data,
         correlation_id, causation_id, occurred_at, recorded_at) = row  # fmt: skip
        try:
            known = decoders[type_name]
        except KeyError:
            known = decoders[type_name] = _fast_decoder(registry.get(type_name))
        event: object = _SLOW
        if known is not None and known[0] == schema_version:
            try:
                event = known[1](data)
            except (ValueError, msgspec.DecodeError):
                event = _SLOW
        if event is _SLOW:
            slow = decode_event(
                serializer,
                global_position=position,
                event_id=event_id,
                stream_id=stream_id,
                stream_version=version,
                type_name=type_name,
                schema_version=schema_version,
                data=data,
                correlation_id=correlation_id,
                causation_id=causation_id,
                occurred_at=occurred_at,
                recorded_at=recorded_at,
                skip_unknown=skip_unknown,
            )
            if slow is not None:
                append(slow)
            continue
        if occurred_at.tzinfo is None:
            occurred_at, recorded_at = _aware(occurred_at), _aware(recorded_at)
        if (
            occurred_at != metadata.timestamp
            or schema_version != metadata.schema_version
            or correlation_id != metadata.correlation_id
            or causation_id != metadata.causation_id
        ):
            # the events of one append mostly share their metadata: share the (frozen) object
            metadata = EventMetadata(occurred_at, schema_version, correlation_id, causation_id)
        append(
            RecordedEvent(
                event_id, stream_id, version, position, type_name, event, metadata, recorded_at
            )
        )
    return decoded


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fast_decoder(entry: RegisteredType | None) -> tuple[int, Callable[[bytes], object]] | None:
    """``entry``'s schema version and a decoder of its bytes (raises on bad input)."""
    if entry is None:
        return None
    codec, cls = entry.codec, entry.cls
    if isinstance(codec, MsgspecJsonCodec):
        try:
            return entry.schema_version, codec.decoder_for(cls).decode
        except TypeError:  # not a class msgspec decodes: `decode` says so, per event
            pass
    return entry.schema_version, lambda data: codec.decode(data, cls)


_SLOW = object()


def decode_snapshot(
    serializer: Serializer,
    state_type: type[S],
    *,
    stream_id: str,
    stream_version: int,
    type_name: str,
    schema_version: int,
    data: bytes,
    recorded_at: datetime,
) -> Snapshot[S] | None:
    """A snapshot usable as ``state_type`` now, or ``None`` (caller replays the stream)."""
    entry = serializer.registry.entry_for(state_type)
    if entry.name != type_name or entry.schema_version != schema_version:
        return None
    try:
        state = serializer.decode_as(entry, schema_version, data)
    except DECODE_ERRORS as exc:
        logger.warning("Ignoring the snapshot of stream %r: %s", stream_id, exc)
        return None
    assert isinstance(state, state_type)
    return Snapshot(stream_id, stream_version, state, schema_version, _aware(recorded_at))


def type_names(serializer: Serializer, event_types: Collection[str | type] | None) -> list[str]:
    """Stable names for an ``event_types`` filter given as classes or names."""
    if event_types is None:
        return []
    return [t if isinstance(t, str) else serializer.registry.name_of(t) for t in event_types]


def now() -> datetime:
    """The current time in UTC (one place, so adapters agree on the clock and its zone)."""
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything dockyard stores is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
