"""The in-memory snapshot store."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from dockyard.eventsourcing._codec import decode_snapshot, now
from dockyard.eventsourcing._store import check_stream_id
from dockyard.eventsourcing._store_snapshots import Snapshot
from dockyard.serialization import SerializedValue, Serializer

__all__ = ["InMemorySnapshotStore"]

S = TypeVar("S")


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
