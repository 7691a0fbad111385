"""``SagaBackend``: the adapters a ``SagasModule`` keeps its instances with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dockyard.di import ProviderSpec
from dockyard.modules import ModuleLike

__all__ = ["SagaBackend"]


class SagaBackend(Protocol):
    """Provides ``SagaStore`` (app-wide) and ``SagaWriter`` (per scope).

    ``dockyard.sagas.memory.InMemorySagaBackend`` (the default) or
    ``dockyard.sql.SqlSagaBackend`` (instances in the unit of work's transaction).
    """

    def providers(self) -> Sequence[ProviderSpec]:
        """Providers of ``SagaStore`` and ``SagaWriter``."""
        ...

    def imports(self) -> Sequence[ModuleLike]:
        """Modules those providers need (e.g. ``SqlModule`` for the unit of work)."""
        ...
