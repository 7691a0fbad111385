"""In-memory adapters of the event sourcing ports: real stores kept in process memory.

``InMemoryEventStore`` and ``InMemorySnapshotStore`` pass the contract suites every adapter
passes (``dockyard.testing.contracts``); the SQL adapters are in ``dockyard.sql``. They store
what the SQL adapters store, encoded the same way, so a test on them fails where production would.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar
from uuid import UUID

from dockyard.eventsourcing._codec import (
    check_expected_version,
    decode_event,
    decode_snapshot,
    encode_events,
    now,
    type_names,
)
from dockyard.eventsourcing._store import (
    AppendResult,
    ExpectedVersion,
    OpenAppend,
    RecordedEvent,
    check_stream_id,
)
from dockyard.eventsourcing._store_snapshots import Snapshot
from dockyard.exceptions import DuplicateEventIdError, StreamDeletedError
from dockyard.serialization import SerializedValue, Serializer

__all__ = ["InMemoryEventStore", "InMemorySnapshotStore"]

S = TypeVar("S")


@dataclass(slots=True)
class _Stored:
    global_position: int
    event_id: UUID
    stream_id: str
    stream_version: int
    type_name: str
    schema_version: int
    data: bytes
    correlation_id: str | None
    causation_id: str | None
    occurred_at: datetime
    recorded_at: datetime


@dataclass(slots=True)
class _Stream:
    version: int = 0
    deleted: bool = False
    events: list[_Stored] = field(default_factory=list)


@dataclass(slots=True)
class _Log:
    streams: dict[str, _Stream] = field(default_factory=dict)
    events: list[_Stored] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    event_ids: set[UUID] = field(default_factory=set)
    """The ids of the stored events: unique across the store, as the SQL adapters' index."""
    next_position: int = 1
    idempotency: dict[tuple[str, str], AppendResult] = field(default_factory=dict)


class InMemoryEventStore:
    """An ``EventStore`` in process memory, for tests, demos and single-process apps.

    Events are serialized on append and decoded on read exactly like the SQL adapters do, so
    serialization errors, upcasting and unknown types behave the same. Every operation runs
    without awaiting in between its check and its write, so concurrent tasks on one event
    loop see each append as atomic. Share one instance per app (a singleton), not per scope.
    It is a ``LogHeadReader``: projections read its head and lag without scanning the log.
    """

    __slots__ = ("_log", "serializer")

    def __init__(self, serializer: Serializer | None = None) -> None:
        self.serializer = serializer if serializer is not None else Serializer()
        self._log = _Log()

    def using(self, serializer: Serializer) -> InMemoryEventStore:
        """The same events seen through another serializer (say, a reader knowing fewer types)."""
        view = InMemoryEventStore(serializer)
        view._log = self._log
        return view

    async def append(
        self,
        stream_id: str,
        events: Sequence[object],
        expected_version: int | ExpectedVersion,
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        if idempotency_key is not None:
            previous = self._log.idempotency.get((stream_id, idempotency_key))
            if previous is not None:
                return previous
        recorded_at = now()
        rows = encode_events(self.serializer, stream_id, events, expected_version, recorded_at)
        stream = self._log.streams.get(stream_id)
        if stream is not None and stream.deleted:
            raise StreamDeletedError(stream_id, stream.version, "append to")
        current = stream.version if stream is not None else 0
        check_expected_version(stream_id, expected_version, current, exists=current > 0)
        event_ids = self._log.event_ids
        for row in rows:
            if row.event_id in event_ids:
                raise DuplicateEventIdError(row.event_id, stream_id)
        if stream is None:
            stream = self._log.streams[stream_id] = _Stream()
        first_position = self._log.next_position
        for offset, row in enumerate(rows, start=1):
            stored = _Stored(
                global_position=first_position + offset - 1,
                event_id=row.event_id,
                stream_id=stream_id,
                stream_version=current + offset,
                type_name=row.type_name,
                schema_version=row.schema_version,
                data=row.data,
                correlation_id=row.correlation_id,
                causation_id=row.causation_id,
                occurred_at=row.occurred_at,
                recorded_at=recorded_at,
            )
            stream.events.append(stored)
            event_ids.add(row.event_id)
            self._log.events.append(stored)
            self._log.positions.append(stored.global_position)
        stream.version = current + len(rows)
        self._log.next_position = first_position + len(rows)
        result = AppendResult(
            stream_id, current + 1, stream.version, first_position, self._log.next_position - 1
        )
        if idempotency_key is not None:
            self._log.idempotency[stream_id, idempotency_key] = result
        return result

    async def read_stream(
        self,
        stream_id: str,
        from_version: int = 0,
        limit: int | None = None,
        backwards: bool = False,
        *,
        skip_unknown: bool = False,
    ) -> Sequence[RecordedEvent]:
        check_stream_id(stream_id)
        stream = self._log.streams.get(stream_id)
        if stream is None:
            return []
        if stream.deleted:
            raise StreamDeletedError(stream_id, stream.version, "read")
        if backwards:
            last = stream.version if from_version == 0 else from_version
            selected = [e for e in reversed(stream.events) if e.stream_version <= last]
        else:
            selected = [e for e in stream.events if e.stream_version >= from_version]
        return self._decode(selected, limit, skip_unknown)

    async def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        event_types: Collection[str | type] | None = None,
        *,
        skip_unknown: bool = False,
    ) -> Sequence[RecordedEvent]:
        wanted = set(type_names(self.serializer, event_types))
        start = bisect_right(self._log.positions, after_position)
        log = self._log.events
        selected = (
            log[i] for i in range(start, len(log)) if not wanted or log[i].type_name in wanted
        )
        return self._decode(selected, limit, skip_unknown)

    # -- LogHeadReader: every stored event is final, and a reader never waits ----------------

    async def log_heads(self) -> tuple[int, int]:
        positions = self._log.positions
        head = positions[-1] if positions else 0
        return head, head

    async def count_after(self, position: int) -> int:
        positions = self._log.positions
        return len(positions) - bisect_right(positions, position)

    async def held_back_by(self) -> OpenAppend | None:
        return None

    async def delete_stream(self, stream_id: str) -> None:
        check_stream_id(stream_id)
        stream = self._log.streams.setdefault(stream_id, _Stream())
        stream.deleted = True
        self._forget(stream_id, stream, keep_from=stream.version + 1)

    async def truncate_before(self, stream_id: str, version: int) -> None:
        check_stream_id(stream_id)
        stream = self._log.streams.get(stream_id)
        if stream is None or stream.deleted:
            return
        self._forget(stream_id, stream, keep_from=version)

    def _forget(self, stream_id: str, stream: _Stream, keep_from: int) -> None:
        if not any(e.stream_version < keep_from for e in stream.events):
            return
        log = self._log
        log.event_ids.difference_update(
            e.event_id for e in stream.events if e.stream_version < keep_from
        )  # the SQL adapters delete the rows, so the ids are free again
        stream.events = [e for e in stream.events if e.stream_version >= keep_from]
        log.events = [
            e for e in log.events if e.stream_id != stream_id or e.stream_version >= keep_from
        ]
        log.positions = [e.global_position for e in log.events]

    def _decode(
        self, stored: Iterable[_Stored], limit: int | None, skip_unknown: bool
    ) -> list[RecordedEvent]:
        decoded: list[RecordedEvent] = []
        for row in stored:
            if limit is not None and len(decoded) >= limit:
                break
            event = decode_event(
                self.serializer,
                global_position=row.global_position,
                event_id=row.event_id,
                stream_id=row.stream_id,
                stream_version=row.stream_version,
                type_name=row.type_name,
                schema_version=row.schema_version,
                data=row.data,
                correlation_id=row.correlation_id,
                causation_id=row.causation_id,
                occurred_at=row.occurred_at,
                recorded_at=row.recorded_at,
                skip_unknown=skip_unknown,
            )
            if event is not None:
                decoded.append(event)
        return decoded


class InMemorySnapshotStore:
    """A ``SnapshotStore`` in process memory; states are serialized like the SQL adapter does."""

    __slots__ = ("_snapshots", "serializer")

    def __init__(self, serializer: Serializer | None = None) -> None:
        self.serializer = serializer if serializer is not None else Serializer()
        self._snapshots: dict[str, tuple[int, SerializedValue, datetime]] = {}

    def using(self, serializer: Serializer) -> InMemorySnapshotStore:
        """The same snapshots seen through another serializer."""
        view = InMemorySnapshotStore(serializer)
        view._snapshots = self._snapshots
        return view

    async def save(self, stream_id: str, stream_version: int, state: object) -> None:
        check_stream_id(stream_id)
        stored = self.serializer.serialize(state)
        held = self._snapshots.get(stream_id)
        if held is None or held[0] <= stream_version:  # an older one never replaces a newer one
            self._snapshots[stream_id] = (stream_version, stored, now())

    async def load(self, stream_id: str, state_type: type[S]) -> Snapshot[S] | None:
        check_stream_id(stream_id)
        found = self._snapshots.get(stream_id)
        if found is None:
            return None
        stream_version, stored, recorded_at = found
        return decode_snapshot(
            self.serializer,
            state_type,
            stream_id=stream_id,
            stream_version=stream_version,
            type_name=stored.type_name,
            schema_version=stored.schema_version,
            data=stored.data,
            recorded_at=recorded_at,
        )

    async def delete(self, stream_id: str) -> None:
        check_stream_id(stream_id)
        self._snapshots.pop(stream_id, None)
