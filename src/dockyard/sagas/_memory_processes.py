"""In-memory adapters of the process manager ports: a real implementation for demos and tests.

A scope that loads an instance holds a per-key lock until it ends; what it saves is applied
when it exits without an error (and checked against the fence then). It passes
``ProcessStoreContract`` like the SQL adapter. One process only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import replace

from dockyard.di import ProviderSpec, object_, scoped
from dockyard.modules import ModuleLike
from dockyard.sagas._process_store import (
    FINISHED,
    ProcessRecord,
    ProcessStatus,
    ProcessStore,
    ProcessWriter,
)

__all__ = ["InMemoryProcessBackend", "InMemoryProcessStore", "memory_process_writer"]

_Id = tuple[str, str]


class InMemoryProcessStore:
    """Process manager instances in this process's memory; one per app (a singleton)."""

    __slots__ = ("_locks", "_rows", "clock")

    def __init__(self) -> None:
        self._rows: dict[_Id, ProcessRecord] = {}
        self._locks: dict[_Id, asyncio.Lock] = {}
        self.clock: Callable[[], float] = time.time
        """The store's clock (epoch seconds): instances' times, retention's age."""

    def lock(self, name: str, key: str) -> asyncio.Lock:
        return self._locks.setdefault((name, key), asyncio.Lock())

    def row(self, name: str, key: str) -> ProcessRecord | None:
        return self._rows.get((name, key))

    def write(self, record: ProcessRecord) -> bool:
        """Create or replace ``record`` if the fence allows it."""
        ident = (record.name, record.key)
        current = self._rows.get(ident)
        expected = current.version if current is not None else 0
        if record.version != expected + 1:
            return False
        now = self.clock()
        created = current.created_at if current is not None else now
        self._rows[ident] = replace(record, created_at=created, updated_at=now)
        return True

    async def get(self, name: str, key: str, /) -> ProcessRecord | None:
        return self._rows.get((name, key))

    async def find(
        self,
        *,
        name: str | None = None,
        status: ProcessStatus | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[ProcessRecord]:
        rows = sorted(self._rows.values(), key=_order)
        if after is not None:
            cursor = self._rows.get(after)
            if cursor is None:
                return []
            rows = [r for r in rows if _order(r) > _order(cursor)]
        return [
            r
            for r in rows
            if (name is None or r.name == name) and (status is None or r.status is status)
        ][:limit]

    async def purge(self, older_than: float, limit: int, /) -> int:
        threshold = self.clock() - older_than
        old = [
            ident
            for ident, r in self._rows.items()
            if r.status in FINISHED and r.updated_at < threshold and not self._held(ident)
        ][: max(limit, 0)]
        for ident in old:
            del self._rows[ident]
            self._locks.pop(ident, None)
        return len(old)

    def _held(self, ident: _Id) -> bool:
        lock = self._locks.get(ident)
        return lock is not None and lock.locked()


def _order(record: ProcessRecord) -> tuple[float, str, str]:
    return (record.created_at, record.name, record.key)


class _MemoryWriter(ProcessWriter):
    __slots__ = ("held", "saved", "store")

    def __init__(self, store: InMemoryProcessStore) -> None:
        self.store = store
        self.held: dict[_Id, asyncio.Lock] = {}
        self.saved: list[ProcessRecord] = []

    async def load(self, name: str, key: str, /) -> ProcessRecord | None:
        ident = (name, key)
        if ident not in self.held:  # a scope may load one instance twice: hold it once
            lock = self.store.lock(name, key)
            await lock.acquire()
            self.held[ident] = lock
        pending = [r for r in self.saved if (r.name, r.key) == ident]
        return pending[-1] if pending else self.store.row(name, key)

    async def save(self, record: ProcessRecord, /) -> bool:
        ident = (record.name, record.key)
        pending = [r for r in self.saved if (r.name, r.key) == ident]
        current = pending[-1] if pending else self.store.row(*ident)
        if record.version != (current.version if current is not None else 0) + 1:
            return False
        self.saved.append(record)
        return True


async def memory_process_writer(
    store: InMemoryProcessStore,
) -> AsyncGenerator[ProcessWriter, BaseException | None]:
    """The scope's writer: its saves are applied, and its locks freed, when the scope ends."""
    writer = _MemoryWriter(store)
    error: BaseException | None = BaseException()
    try:
        error = yield writer  # Dishka sends the exception the scope exited with, or None
    finally:
        try:
            if error is None:
                for record in writer.saved:
                    store.write(record)
        finally:
            for lock in writer.held.values():
                lock.release()


class InMemoryProcessBackend:
    """Process manager instances in this process's memory: for demos and tests.

    Attributes:
        store: The instances, to inspect in tests.
    """

    __slots__ = ("store",)

    def __init__(self) -> None:
        self.store = InMemoryProcessStore()

    def providers(self) -> Sequence[ProviderSpec]:
        return [
            object_(self.store, provides=InMemoryProcessStore),
            object_(self.store, provides=ProcessStore),
            scoped(ProcessWriter, memory_process_writer),
        ]

    def imports(self) -> Sequence[ModuleLike]:
        return ()
