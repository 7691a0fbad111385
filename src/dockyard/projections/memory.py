"""In-memory adapters of the projection ports: checkpoints and leases in process memory.

``InMemoryCheckpointStore`` and ``InMemoryLeaseStore`` pass the contract suites every adapter
passes (``dockyard.testing.contracts``); the SQL adapters are in ``dockyard.sql``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from dockyard.projections._checkpoints import Checkpoint, utc_now
from dockyard.projections._leases import Lease

__all__ = ["InMemoryCheckpointStore", "InMemoryLeaseStore"]


class InMemoryCheckpointStore:
    """A ``CheckpointStore`` in process memory; share one per app (a singleton).

    Memory has no transactions: ``lock`` is ``load``, and the runners of one process keep
    each other out with a lock of their own.
    """

    __slots__ = ("_checkpoints",)

    def __init__(self) -> None:
        self._checkpoints: dict[str, Checkpoint] = {}

    async def load(self, name: str) -> Checkpoint:
        return self._checkpoints.get(name) or Checkpoint(name)

    async def lock(self, name: str) -> Checkpoint:
        checkpoint = self._checkpoints.get(name)
        if checkpoint is None:
            checkpoint = self._checkpoints[name] = Checkpoint(name, updated_at=utc_now())
        return checkpoint

    async def save(self, checkpoint: Checkpoint) -> None:
        self._checkpoints[checkpoint.name] = replace(checkpoint, updated_at=utc_now())

    async def load_all(self) -> Sequence[Checkpoint]:
        return [self._checkpoints[name] for name in sorted(self._checkpoints)]


class InMemoryLeaseStore:
    """A ``LeaseStore`` in process memory, for runners sharing one process (a singleton)."""

    __slots__ = ("_leases", "clock")

    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.time
        """Seconds since the epoch; replace it to control expiry in tests."""
        self._leases: dict[str, Lease] = {}

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        now = self.clock()
        current = self._leases.get(name)
        if current is not None and current.owner != owner and current.expires_at > now:
            return False
        self._leases[name] = Lease(name, owner, now + ttl)
        return True

    async def release(self, name: str, owner: str) -> None:
        current = self._leases.get(name)
        if current is not None and current.owner == owner:
            del self._leases[name]

    async def holder(self, name: str) -> Lease | None:
        current = self._leases.get(name)
        if current is None or current.expires_at <= self.clock():
            return None
        return current
