"""In-memory adapters of the saga ports: a real implementation for demos and tests.

``InMemorySagaBackend`` gives a ``SagasModule`` the store below; it passes
``dockyard.testing.contracts.SagaStoreContract`` like the SQL adapter (``dockyard.sql``) does.

There are no transactions in memory: what a scope writes (instances it starts, checkpoints,
each checked against the fence when written) is applied when the scope exits without an error,
and the fence is checked again then. A step's own in-memory effects cannot be rolled back; use
it in one process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from dockyard.di import ProviderSpec, object_, scoped
from dockyard.modules import ModuleLike
from dockyard.sagas._memory_processes import (
    InMemoryProcessBackend,
    InMemoryProcessStore,
    memory_process_writer,
)
from dockyard.sagas._record import SagaRecord, SagaStatus
from dockyard.sagas._store import SagaStore, SagaWriter

__all__ = [
    "InMemoryProcessBackend",
    "InMemoryProcessStore",
    "InMemorySagaBackend",
    "InMemorySagaStore",
    "memory_process_writer",
    "memory_saga_writer",
]

logger = logging.getLogger("dockyard.sagas")


@dataclass(frozen=True, slots=True)
class _Added:
    record: SagaRecord
    lease_ttl: float | None
    on_commit: Callable[[], object] | None


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    record: SagaRecord
    owner: str
    due_in: float
    lease_ttl: float | None


class InMemorySagaStore:
    """Saga instances in this process's memory; share one instance per app (a singleton)."""

    __slots__ = ("_reserved", "_rows", "clock")

    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.time
        """Seconds since the epoch; replace it to control leases and due times in tests."""
        self._rows: dict[str, SagaRecord] = {}
        self._reserved: set[str] = set()

    # -- writing (through memory_saga_writer) --------------------------------------------

    def reserve(self, saga_id: str) -> bool:
        """Hold ``saga_id`` for a scope about to add it; ``False`` if it is taken."""
        if saga_id in self._rows or saga_id in self._reserved:
            return False
        self._reserved.add(saga_id)
        return True

    def settle(
        self, added: Sequence[_Added], checkpoints: Sequence[_Checkpoint], *, committed: bool
    ) -> None:
        """Apply what a scope wrote (if it committed) and free its reservations."""
        now = self.clock()
        if committed:
            for checkpoint in checkpoints:
                record = checkpoint.record
                if not self.checkpoint(
                    record, checkpoint.owner, checkpoint.due_in, checkpoint.lease_ttl
                ):
                    logger.warning(
                        "saga %s: a checkpoint was refused at commit (another runner holds it)",
                        record.saga_id,
                    )
        for item in added:
            self._reserved.discard(item.record.saga_id)
            if committed:
                record = item.record
                lease = now + item.lease_ttl if record.owner and item.lease_ttl else None
                self._rows[record.saga_id] = replace(
                    record, lease_until=lease, due_at=now, created_at=now, updated_at=now
                )
        if committed:
            for item in added:
                if item.on_commit is not None:
                    item.on_commit()

    def row(self, saga_id: str) -> SagaRecord | None:
        return self._rows.get(saga_id)

    def checkpoint(
        self, record: SagaRecord, owner: str | None, due_in: float, lease_ttl: float | None
    ) -> bool:
        """Replace the row if it is at ``record.version - 1`` and names ``owner``."""
        current = self._rows.get(record.saga_id)
        if current is None or current.version != record.version - 1 or current.owner != owner:
            return False
        now = self.clock()
        lease = now + lease_ttl if record.owner is not None and lease_ttl is not None else None
        self._rows[record.saga_id] = replace(
            record,
            owner=record.owner,
            lease_until=lease,
            due_at=now + due_in,
            created_at=current.created_at,
            updated_at=now,
        )
        return True

    # -- SagaStore --------------------------------------------------------------------------

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
        now = self.clock()
        wanted, kept = set(names), set(holding)
        due = sorted(
            (
                r
                for r in self._rows.values()
                if r.name in wanted
                and r.status.is_active
                and r.due_at <= now
                and (r.owner is None or (r.lease_until or 0.0) < now)
                and r.saga_id not in kept
            ),
            key=lambda r: (r.due_at, r.created_at, r.saga_id),
        )
        claimed = []
        for record in due[:limit]:
            taken = replace(
                record, owner=owner, lease_until=now + lease_ttl, version=record.version + 1
            )
            self._rows[record.saga_id] = taken
            claimed.append(taken)
        return claimed

    async def renew(self, owner: str, saga_ids: Sequence[str], lease_ttl: float, /) -> list[str]:
        now = self.clock()
        renewed = []
        for saga_id in saga_ids:
            record = self._rows.get(saga_id)
            if record is not None and record.owner == owner:
                self._rows[saga_id] = replace(record, lease_until=now + lease_ttl)
                renewed.append(saga_id)
        return renewed

    async def release(self, owner: str, saga_ids: Sequence[str] | None, /) -> None:
        ids = self._rows.keys() if saga_ids is None else saga_ids
        for saga_id in list(ids):
            record = self._rows.get(saga_id)
            if record is not None and record.owner == owner:
                self._rows[saga_id] = replace(record, owner=None, lease_until=None)

    async def get(self, saga_id: str, /) -> SagaRecord | None:
        return self._rows.get(saga_id)

    async def find(
        self,
        *,
        name: str | None = None,
        status: SagaStatus | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[SagaRecord]:
        rows = sorted(self._rows.values(), key=lambda r: (r.created_at, r.saga_id))
        if after is not None:
            last = self._rows.get(after)
            if last is not None:
                mark = (last.created_at, last.saga_id)
                rows = [r for r in rows if (r.created_at, r.saga_id) > mark]
        found = [
            r
            for r in rows
            if (name is None or r.name == name) and (status is None or r.status is status)
        ]
        return found[:limit]

    async def counts(self) -> Mapping[SagaStatus, int]:
        found = dict.fromkeys(SagaStatus, 0)
        for record in self._rows.values():
            found[record.status] += 1
        return found

    async def update(self, record: SagaRecord, /, *, due_in: float = 0.0) -> bool:
        current = self._rows.get(record.saga_id)
        now = self.clock()
        if current is None or current.version != record.version - 1:
            return False
        if current.owner is not None and (current.lease_until or 0.0) >= now:
            return False
        self._rows[record.saga_id] = replace(
            record,
            owner=None,
            lease_until=None,
            due_at=now + due_in,
            created_at=current.created_at,
            updated_at=now,
        )
        return True

    async def purge(self, older_than: float, limit: int, /) -> int:
        cutoff = self.clock() - older_than
        old = [
            r.saga_id for r in self._rows.values() if r.status.is_finished and r.updated_at < cutoff
        ][: max(limit, 0)]
        for saga_id in old:
            del self._rows[saga_id]
        return len(old)


class _MemoryWriter(SagaWriter):
    __slots__ = ("added", "checkpoints", "pending", "store")

    def __init__(self, store: InMemorySagaStore) -> None:
        self.store = store
        self.added: list[_Added] = []
        self.checkpoints: list[_Checkpoint] = []
        self.pending: dict[str, SagaRecord] = {}
        """Rows as this scope's checkpoints left them (what a later one is fenced against)."""

    async def add(
        self,
        record: SagaRecord,
        /,
        *,
        lease_ttl: float | None = None,
        on_commit: Callable[[], object] | None = None,
    ) -> bool:
        if not self.store.reserve(record.saga_id):
            return False
        self.added.append(_Added(record, lease_ttl, on_commit))
        return True

    async def checkpoint(
        self,
        record: SagaRecord,
        /,
        *,
        owner: str,
        due_in: float = 0.0,
        lease_ttl: float | None = None,
        last: bool = False,  # noqa: ARG002 - committed with the scope either way
    ) -> bool:
        current = self.pending.get(record.saga_id) or self.store.row(record.saga_id)
        if current is None or current.version != record.version - 1 or current.owner != owner:
            return False
        self.pending[record.saga_id] = record
        self.checkpoints.append(_Checkpoint(record, owner, due_in, lease_ttl))
        return True

    async def get(self, saga_id: str, /) -> SagaRecord | None:
        return self.pending.get(saga_id) or self.store.row(saga_id)


async def memory_saga_writer(
    store: InMemorySagaStore,
) -> AsyncGenerator[SagaWriter, BaseException | None]:
    """The scope's saga writer: instances it starts are added when the scope exits cleanly."""
    writer = _MemoryWriter(store)
    error: BaseException | None = BaseException()
    try:
        error = yield writer  # Dishka sends the exception the scope exited with, or None
    finally:
        store.settle(writer.added, writer.checkpoints, committed=error is None)


class InMemorySagaBackend:
    """Saga instances in this process's memory: for demos and tests, lost at exit.

    Attributes:
        store: The instances, to inspect in tests.
    """

    __slots__ = ("store",)

    def __init__(self) -> None:
        self.store = InMemorySagaStore()

    def providers(self) -> Sequence[ProviderSpec]:
        return [
            object_(self.store, provides=InMemorySagaStore),
            object_(self.store, provides=SagaStore),
            scoped(SagaWriter, memory_saga_writer),
        ]

    def imports(self) -> Sequence[ModuleLike]:
        return ()
