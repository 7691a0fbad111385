"""``OutboxBackend``: the adapters an ``OutboxModule`` keeps its outbox and inbox with.

Three names, three things: ``OutboxStore`` is the app-wide port the relay claims rows from,
``OutboxWriter`` the per-scope port a scope adds its messages with, and an ``OutboxBackend``
the bundle that provides both (and the ``Inbox``) to the module:
``dockyard.outbox.memory.InMemoryOutboxBackend`` or ``dockyard.sql.SqlOutboxBackend``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dockyard.di import ProviderSpec
from dockyard.modules import ModuleLike

__all__ = ["OutboxBackend"]


class OutboxBackend(Protocol):
    """Provides ``OutboxStore`` (app-wide), ``OutboxWriter`` and ``Inbox`` (per scope).

    ``dockyard.sql.SqlOutboxBackend`` writes both in the scope's unit of work.
    """

    def providers(self) -> Sequence[ProviderSpec]:
        """Providers of ``OutboxStore``, ``OutboxWriter`` and ``Inbox``."""
        ...

    def imports(self) -> Sequence[ModuleLike]:
        """Modules those providers need (e.g. ``SqlModule`` for the unit of work)."""
        ...
