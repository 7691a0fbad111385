"""Where an ``OutboxModule`` keeps its outbox and inbox: in memory, or SQL (``dockyard.sql``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dockyard.di import ProviderSpec
from dockyard.modules import ModuleLike

__all__ = ["OutboxStorage"]


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
