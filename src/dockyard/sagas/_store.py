"""The saga storage ports. Every adapter passes ``SagaStoreContract``.

``SagaWriter`` is scoped: it writes in the scope's transaction, so a started instance commits
with the command that started it, and a step's checkpoint with the step's own writes.
``SagaStore`` works in its own short transactions: runners claim, renew and release
instances through it, and ``SagaControl`` reads and changes parked ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from dockyard.sagas._record import SagaRecord, SagaStatus

__all__ = ["DedicatedLeaseRenewals", "LeaseRenewer", "SagaStore", "SagaWriter"]


class SagaWriter(Protocol):
    """Writes saga instances in the current scope's transaction."""

    async def add(
        self,
        record: SagaRecord,
        /,
        *,
        lease_ttl: float | None = None,
        on_commit: Callable[[], object] | None = None,
    ) -> bool:
        """Insert a new instance, due now; it exists once the scope commits.

        Args:
            record: The instance (its times are set by the store's clock).
            lease_ttl: With ``record.owner``, the owner holds it for this many seconds.
            on_commit: Called once the scope's transaction has committed.

        Returns:
            ``False`` (and nothing is written) if an instance with that id exists.
        """
        ...

    async def checkpoint(
        self,
        record: SagaRecord,
        /,
        *,
        owner: str,
        due_in: float = 0.0,
        lease_ttl: float | None = None,
        last: bool = False,
    ) -> bool:
        """Replace the instance with ``record`` if ``owner`` holds it at ``record.version - 1``.

        The fence of every runner write: ``UPDATE … WHERE id = ? AND version = ? AND owner = ?``.
        It commits, or rolls back, with the scope.

        Args:
            record: The new row; its ``version`` is one more than the version read.
            owner: Who writes; the row must still name it.
            due_in: Seconds from now (the store's clock) until it may run again.
            lease_ttl: Keep holding it for this many seconds; ``None`` releases it.
            last: The scope commits right after it, writing nothing in between (what the
                engine does): a store may then send it alone, committed at once, when
                nothing else was written in the transaction (one round trip on PostgreSQL).

        Returns:
            ``False`` (and nothing is written) if the instance moved on or changed hands.
        """
        ...

    async def get(self, saga_id: str, /) -> SagaRecord | None:
        """The instance with that id, read in the scope's transaction (and locked for the rest
        of it where the database can: ``FOR UPDATE`` on PostgreSQL); what a reply to a remote
        step reads before its fenced checkpoint."""
        ...


class SagaStore(Protocol):
    """What runners and ``SagaControl`` do with saga instances, each in its own transaction."""

    async def claim(
        self,
        names: Sequence[str],
        owner: str,
        limit: int,
        lease_ttl: float,
        /,
        *,
        holding: Sequence[str] = (),
    ) -> list[SagaRecord]:
        """Take up to ``limit`` due, active instances of the sagas ``names`` that nobody holds
        (or whose lease expired), oldest due first, for ``lease_ttl`` seconds.

        Each claimed row gets ``owner``, a new lease and ``version + 1``; concurrent claims
        never return the same instance. Never one of ``holding``: the instances the caller is
        still working on, even if their leases lapsed (its heartbeat renews them or finds them
        taken); another owner still takes those once their leases end.
        """
        ...

    async def renew(self, owner: str, saga_ids: Sequence[str], lease_ttl: float, /) -> list[str]:
        """Extend ``owner``'s leases on ``saga_ids``; return the ids it still holds."""
        ...

    async def release(self, owner: str, saga_ids: Sequence[str] | None, /) -> None:
        """Give up ``owner``'s leases on ``saga_ids`` (every one it holds with ``None``)."""
        ...

    async def get(self, saga_id: str, /) -> SagaRecord | None:
        """The instance with that id, whatever its status."""
        ...

    async def find(
        self,
        *,
        name: str | None = None,
        status: SagaStatus | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[SagaRecord]:
        """Instances oldest first (by creation, then id), ``limit`` at a time after the
        instance ``after``, filtered by saga name and status."""
        ...

    async def counts(self) -> Mapping[SagaStatus, int]:
        """How many instances are in each status (every status present, zero when none)."""
        ...

    async def update(self, record: SagaRecord, /, *, due_in: float = 0.0) -> bool:
        """Replace an instance nobody holds if it is still at ``record.version - 1`` (what an
        operator's retry, skip or cancel writes); it is due ``due_in`` seconds from now."""
        ...

    async def purge(self, older_than: float, limit: int, /) -> int:
        """Delete up to ``limit`` finished instances (completed, compensated, cancelled) last
        changed more than ``older_than`` seconds ago (the store's clock); return how many.

        Never an active or parked (failed) one. One short transaction that waits for no lock:
        rows another transaction holds are left for the next call.
        """
        ...


class LeaseRenewer(Protocol):
    """What a runner's heartbeat renews its leases with (a ``SagaStore`` is one)."""

    async def renew(self, owner: str, saga_ids: Sequence[str], lease_ttl: float, /) -> list[str]:
        """Extend ``owner``'s leases on ``saga_ids``; return the ids it still holds."""
        ...


@runtime_checkable
class DedicatedLeaseRenewals(Protocol):
    """An optional capability of a ``SagaStore``: renewals that never queue behind steps.

    A runner whose store has it (checked once, when it starts) renews its leases through
    what ``lease_renewals()`` yields, for as long as it runs. ``SqlSagaStore`` holds one
    connection of the pool for them: steps hold a connection each for their whole attempt,
    and a renewal that waited for one behind them could come after the lease ended.
    """

    def lease_renewals(self) -> AbstractAsyncContextManager[LeaseRenewer]:
        """Hold what renewals need while the context is open; yield the renewer."""
        ...
