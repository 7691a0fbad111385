"""Leases: which process may run a projection, until when."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["InMemoryLeaseStore", "Lease", "LeaseStore"]


@dataclass(frozen=True, slots=True)
class Lease:
    """A projection's current holder."""

    name: str
    owner: str
    expires_at: float
    """Seconds since the epoch, on the store's clock (the database server's for SQL)."""


class LeaseStore(Protocol):
    """Grants each projection to one owner at a time, for a time to live renewed by heartbeat.

    Each call is its own short transaction. Adapters: ``InMemoryLeaseStore`` and
    ``dockyard.sql.SqlLeaseStore``; both pass ``dockyard.testing.contracts.LeaseStoreContract``.
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
