"""Leases: which process may run a projection, until when."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Lease", "LeaseStore"]


@dataclass(frozen=True, slots=True)
class Lease:
    """A projection's current holder."""

    name: str
    owner: str
    expires_at: float
    """Seconds since the epoch, on the store's clock (the database server's for SQL)."""


class LeaseStore(Protocol):
    """Grants each projection to one owner at a time, for a time to live renewed by heartbeat.

    Each call is its own short transaction. Adapters:
    ``dockyard.projections.memory.InMemoryLeaseStore`` and ``dockyard.sql.SqlLeaseStore``;
    both pass ``dockyard.testing.contracts.LeaseStoreContract``.
    """

    async def acquire(self, name: str, owner: str, ttl: float) -> bool:
        """Take the lease if it is free or expired, or renew it if ``owner`` holds it.

        Returns whether ``owner`` holds it for the next ``ttl`` seconds.
        """
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (a no-op otherwise)."""
        ...

    async def holder(self, name: str) -> Lease | None:
        """The unexpired lease on ``name``, if any."""
        ...
