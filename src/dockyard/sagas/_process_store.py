"""The process manager storage ports. Every adapter passes ``ProcessStoreContract``.

``ProcessWriter`` is scoped: it reads an instance *held* for the rest of the scope (a row lock
on PostgreSQL, the write lock on SQLite, a per-key lock in memory) and writes it back in the
scope's transaction, with the handler's own writes. ``ProcessStore`` reads instances in short
transactions of its own (tests, operators).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

__all__ = ["FINISHED", "ProcessRecord", "ProcessStatus", "ProcessStore", "ProcessWriter"]


class ProcessStatus(enum.StrEnum):
    """Where a process manager instance is."""

    ACTIVE = "active"
    """Created by a start message; takes the messages of its key."""
    COMPLETED = "completed"
    """Completed by a handler (``process.complete()``); later messages are ignored."""
    CANCELLED = "cancelled"
    """Ended by an operator (``ProcessControl.cancel``); later messages are ignored."""


FINISHED = frozenset({ProcessStatus.COMPLETED, ProcessStatus.CANCELLED})
"""The statuses a retention purge deletes: nothing more happens to such an instance."""


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One process manager instance as stored: one row per ``(name, key)``."""

    name: str
    key: str
    definition_version: int
    status: ProcessStatus
    state_type: str
    state_schema: int
    state: bytes
    version: int
    """1 when created, one more with each write: the fence of ``ProcessWriter.save``."""
    timeout_id: str | None = None
    """The message id of the pending timeout (a scheduled outbox message), if any."""
    timeout_at: float | None = None
    """When that timeout is due (epoch seconds)."""
    created_at: float = 0.0
    updated_at: float = 0.0


class ProcessWriter(Protocol):
    """Reads and writes process manager instances in the current scope's transaction."""

    async def load(self, name: str, key: str, /) -> ProcessRecord | None:
        """The instance ``(name, key)``, held until the scope ends, whatever its status.

        Held means another scope loading it waits until this one commits or rolls back, then
        reads what it left: concurrent messages of one key never lose an update.
        """
        ...

    async def save(self, record: ProcessRecord, /) -> bool:
        """Write ``record`` with the scope: create it (``version == 1``) or replace the
        instance that is at ``record.version - 1``.

        Returns:
            ``False`` (and nothing is written) if it exists (a create) or moved on (a replace).
        """
        ...


class ProcessStore(Protocol):
    """Reads and purges process manager instances, each in its own short transaction."""

    async def get(self, name: str, key: str, /) -> ProcessRecord | None:
        """The instance ``(name, key)``, whatever its status."""
        ...

    async def find(
        self,
        *,
        name: str | None = None,
        status: ProcessStatus | None = None,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[ProcessRecord]:
        """Instances oldest first (by creation, then name, then key), ``limit`` at a time
        after the instance ``after`` (its ``(name, key)``), filtered by name and status."""
        ...

    async def purge(self, older_than: float, limit: int, /) -> int:
        """Delete up to ``limit`` finished instances (completed, cancelled) last written more
        than ``older_than`` seconds ago; return how many. Never an active one. One short
        transaction that waits for no lock: rows another transaction holds are left for the
        next call."""
        ...
