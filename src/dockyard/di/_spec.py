"""Provider specifications: what a module declares, before it becomes Dishka factories."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Condition", "Lifetime", "ProviderKind", "ProviderSpec"]

Condition = bool | Callable[[], bool]
"""``when=``: a flag, or a zero-argument callable evaluated once when the app is built."""


class Lifetime(enum.Enum):
    """How long a provided object lives."""

    SINGLETON = "singleton"
    """One instance for the whole app (Dishka ``Scope.APP``)."""
    SCOPED = "scoped"
    """One instance per request scope (Dishka ``Scope.REQUEST``), e.g. a unit of work."""
    TRANSIENT = "transient"
    """A new instance every time it is resolved, within a request scope."""

    @property
    def rank(self) -> int:
        """Longer-lived lifetimes rank lower; a provider may depend on equal or lower ranks."""
        return _RANK[self]


_RANK = {Lifetime.SINGLETON: 0, Lifetime.SCOPED: 1, Lifetime.TRANSIENT: 1}


class ProviderKind(enum.Enum):
    FACTORY = "factory"
    """A class or a factory function (plain, generator or async generator)."""
    OBJECT = "object"
    """A ready-made instance."""
    CONTEXT = "context"
    """A value passed in when a scope is opened: ``app.scope(context={T: value})``."""
    MANY = "many"
    """A collection of implementations resolved as ``Sequence[T]``."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One declared provider. Built by the helpers in :mod:`dockyard.di`; not made by hand."""

    kind: ProviderKind
    provides: Any
    """The type this provider is resolved by; ``None`` means "read the factory's return type"."""
    source: Any
    lifetime: Lifetime
    when: Condition = True
    items: tuple[Any, ...] = ()
    """For ``MANY``: the implementation classes or factories, in order."""

    def is_active(self) -> bool:
        return self.when if isinstance(self.when, bool) else bool(self.when())
