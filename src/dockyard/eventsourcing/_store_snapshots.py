"""The ``SnapshotStore`` port: the latest state of a stream, stored apart from its events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

__all__ = ["Snapshot", "SnapshotStore"]

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Snapshot(Generic[S]):
    """A state folded from a stream up to ``stream_version``."""

    stream_id: str
    stream_version: int
    state: S
    schema_version: int
    recorded_at: datetime


class SnapshotStore(Protocol):
    """Keeps the latest snapshot per stream.

    A snapshot is a cache: ``load`` returns ``None`` when there is none, when it was stored
    under another type or schema version than ``state_type`` has now (bump the state's
    ``@event_type(schema_version=…)`` to invalidate old snapshots), or when it no longer decodes.
    The caller then replays the stream from the start.
    """

    async def save(self, stream_id: str, stream_version: int, state: object) -> None:
        """Store ``state`` as the stream's snapshot at ``stream_version``, replacing any older."""
        ...

    async def load(self, stream_id: str, state_type: type[S]) -> Snapshot[S] | None:
        """The stream's snapshot if it is usable as ``state_type`` now, else ``None``."""
        ...

    async def delete(self, stream_id: str) -> None:
        """Forget the stream's snapshot (deleting a stream does not do it for you)."""
        ...
