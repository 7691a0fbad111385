"""The one place dockyard calls a private Dishka method, for speed.

``AsyncContainer.get(T, component=c)`` builds a ``DependencyKey`` on every call and adds a
frame; dispatch plans hold their keys precomputed and call the container's internal getter
instead (``_get_unlocked`` when the scope has no lock, as ``app.scope()`` scopes do; ``_get``,
which takes the lock, otherwise). ``tests/unit/messaging/test_dishka_internals.py`` fails if
Dishka renames or changes these, and :func:`public_getter` is the drop-in public fallback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dishka import AsyncContainer
from dishka.entities.key import DependencyKey

__all__ = ["Getter", "getter", "has_finalizers", "public_getter"]

Getter = Callable[[DependencyKey], Awaitable[Any]]


def getter(container: AsyncContainer) -> Getter:
    """A function resolving a precomputed ``DependencyKey`` in ``container``."""
    if container.lock is None:
        return container._get_unlocked  # noqa: SLF001
    return container._get  # noqa: SLF001


def public_getter(container: AsyncContainer) -> Getter:
    """The same through Dishka's public API (slower: one key and one frame more per call)."""

    async def get(key: DependencyKey) -> Any:
        return await container.get(key.type_hint, component=key.component)

    return get


def has_finalizers(container: AsyncContainer) -> bool:
    """Whether closing ``container`` runs a finalizer: its own, or those of the skipped scopes
    it was entered through (``app.scope()`` enters ``SESSION`` on the way to ``REQUEST``).

    ``False`` means closing it awaits nothing (no generator provider was resolved in it), so
    nothing can interrupt the close. Reads Dishka's private ``_exits`` and ``parent_closer``;
    ``True`` (the safe answer) if they are gone.
    """
    current: AsyncContainer | None = container
    try:  # attribute reads, not getattr(): this runs on every web request
        while current is not None:
            if current._exits:  # noqa: SLF001
                return True
            if current.parent_closer is None:
                return False
            current = current.parent_container
    except AttributeError:
        return True
    return True
