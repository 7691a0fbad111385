"""Where an ``OutboxModule`` keeps its outbox and inbox: in memory, or SQL (``dockyard.sql``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dockyard.di import ProviderSpec, object_, scoped
from dockyard.modules import ModuleLike
from dockyard.outbox._store import Inbox, OutboxStore, OutboxWriter
from dockyard.outbox.memory import (
    InMemoryInboxStore,
    InMemoryOutboxStore,
    memory_inbox,
    memory_outbox_writer,
)

__all__ = ["InMemoryOutboxStorage", "OutboxStorage"]


class OutboxStorage(Protocol):
    """Provides ``OutboxStore`` (app-wide), ``OutboxWriter`` and ``Inbox`` (per scope).

    ``dockyard.sql.SqlOutboxStorage`` writes both in the scope's unit of work.
    """

    def providers(self) -> Sequence[ProviderSpec]:
        """Providers of ``OutboxStore``, ``OutboxWriter`` and ``Inbox``."""
        ...

    def imports(self) -> Sequence[ModuleLike]:
        """Modules those providers need (e.g. ``SqlModule`` for the unit of work)."""
        ...


class InMemoryOutboxStorage:
    """Outbox and inbox in this process's memory: for demos and tests, lost at exit.

    Attributes:
        store: The outbox, to inspect in tests.
        inbox: The handled (message id, handler) pairs.
    """

    __slots__ = ("inbox", "store")

    def __init__(self) -> None:
        self.store = InMemoryOutboxStore()
        self.inbox = InMemoryInboxStore()

    def providers(self) -> Sequence[ProviderSpec]:
        return [
            object_(self.store, provides=InMemoryOutboxStore),
            object_(self.store, provides=OutboxStore),
            object_(self.inbox, provides=InMemoryInboxStore),
            scoped(OutboxWriter, memory_outbox_writer),
            scoped(Inbox, memory_inbox),
        ]

    def imports(self) -> Sequence[ModuleLike]:
        return ()
