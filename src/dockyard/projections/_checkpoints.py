"""Checkpoints: how far a catch-up projection got, and where it is parked if it failed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Checkpoint", "CheckpointStore", "Failure"]


@dataclass(frozen=True, slots=True)
class Failure:
    """The event a projection is parked on."""

    position: int
    """The global position of the event that kept failing."""
    error: str
    """``ExceptionType: message`` of the last attempt."""
    attempts: int
    failed_at: datetime


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """One projection's place in the global log."""

    name: str
    position: int = 0
    """Every event up to and including this global position has been applied (or passed over
    because the projection does not handle its type)."""
    failure: Failure | None = None
    """Set while the projection is parked on a failing event; ``position`` is before it."""
    applied_since_reset: int = 0
    """Events applied since the last reset, for rebuild progress."""
    reset_at: datetime | None = None
    updated_at: datetime | None = None
    paused_at: datetime | None = None
    """Set while an operator has paused the projection (``ProjectionControl.pause``): no
    runner applies a batch until it is resumed."""

    def __post_init__(self) -> None:
        if self.position < 0:
            msg = f"a checkpoint position is >= 0, got {self.position}"
            raise ValueError(msg)


class CheckpointStore(Protocol):
    """Stores checkpoints; the SQL adapter writes in the unit of work's transaction.

    Adapters: ``dockyard.projections.memory.InMemoryCheckpointStore`` and
    ``dockyard.sql.SqlCheckpointStore``. Both pass
    ``dockyard.testing.contracts.CheckpointStoreContract``.
    """

    async def load(self, name: str) -> Checkpoint:
        """The checkpoint of ``name``; position 0 if it has none yet."""
        ...

    async def lock(self, name: str) -> Checkpoint:
        """Like :meth:`load`, and hold the checkpoint against other writers until the
        transaction ends (``SELECT … FOR UPDATE``); the runner's fence."""
        ...

    async def save(self, checkpoint: Checkpoint) -> None:
        """Insert or replace the checkpoint of ``checkpoint.name``."""
        ...

    async def load_all(self) -> Sequence[Checkpoint]:
        """Every stored checkpoint, by name."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)
