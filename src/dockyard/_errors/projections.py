"""Operating catch-up projections: control calls, parked projections, waiting."""

from __future__ import annotations

from collections.abc import Sequence

from dockyard._errors.base import DockyardError
from dockyard._type_name import type_name

__all__ = [
    "ProjectionError",
    "ProjectionFailedError",
    "ProjectionNotFoundError",
    "ProjectionResetError",
    "ProjectionStateError",
    "ProjectionsTimeoutError",
]


class ProjectionError(DockyardError):
    """A catch-up projection cannot do what was asked, or is stuck."""


class ProjectionNotFoundError(ProjectionError, LookupError):
    """No catch-up projection or subscription of that name is registered in the app."""

    def __init__(self, name: str, registered: Sequence[str]) -> None:
        self.name = name
        self.registered = tuple(registered)
        super().__init__(name, self.registered)

    def __str__(self) -> str:
        known = ", ".join(f"`{n}`" for n in self.registered) or "none"
        return (
            f"No catch-up projection named `{self.name}` is registered (registered: {known}). "
            "Hint: list it in `ProjectionsModule.register(projections=[...])` or "
            "`subscriptions=[...]`; inline projections have no checkpoint to operate on."
        )


class ProjectionStateError(ProjectionError, RuntimeError):
    """An operation that needs a parked (failed) projection found it healthy."""

    def __init__(self, name: str, action: str) -> None:
        self.name = name
        self.action = action
        super().__init__(name, action)

    def __str__(self) -> str:
        return (
            f"Cannot {self.action} projection `{self.name}`: it is not parked on a failed event. "
            "Hint: check `await control.status()` first; only a projection in state `failed` "
            "can be retried or skipped."
        )


class ProjectionResetError(ProjectionError, TypeError):
    """A projection was asked to rebuild but cannot clear its read model."""

    def __init__(self, name: str, projection: object) -> None:
        self.name = name
        self.projection = projection
        super().__init__(name, projection)

    def __str__(self) -> str:
        cls = type_name(self.projection)
        return (
            f"Projection `{self.name}` cannot be rebuilt: `{cls}` has no `reset()` to clear its "
            f"read model, so replaying from position 0 would apply every event twice. "
            f"Hint: override `async def reset(self) -> None` in `{cls}` to delete its rows."
        )


class ProjectionFailedError(ProjectionError, RuntimeError):
    """A projection is parked on an event its handler kept failing on (``attempts`` times), or
    on one it could not read (``attempts == 0``)."""

    def __init__(self, name: str, position: int, error: str, attempts: int) -> None:
        self.name = name
        self.position = position
        self.error = error
        self.attempts = attempts
        super().__init__(name, position, error, attempts)

    def __str__(self) -> str:
        if self.attempts == 0:  # it never reached the handler
            return (
                f"Projection `{self.name}` is parked at global position {self.position}: its "
                f"event cannot be read: {self.error} Hint: make it readable (register its type, "
                "add an upcaster, deploy the code that wrote it, or repair the row), then "
                f"`await control.retry({self.name!r})`, or `await control.skip({self.name!r})` "
                "to move past that one event."
            )
        return (
            f"Projection `{self.name}` is parked at global position {self.position} after "
            f"{self.attempts} failed attempts: {self.error}. "
            f"Hint: fix the handler, then `await control.retry({self.name!r})`, or "
            f"`await control.skip({self.name!r})` to move past that one event."
        )


class ProjectionsTimeoutError(ProjectionError, TimeoutError):
    """Projections did not reach the head of the log in time."""

    def __init__(self, timeout: float, lagging: Sequence[tuple[str, int, int]]) -> None:
        self.timeout = timeout
        self.lagging = tuple(lagging)
        """(name, checkpoint, head) of each projection still behind."""
        super().__init__(timeout, self.lagging)

    def __str__(self) -> str:
        behind = ", ".join(f"`{n}` at {p} of {h}" for n, p, h in self.lagging)
        return (
            f"Projections did not reach the head of the event log within {self.timeout:g} s: "
            f"{behind}. Hint: check that nothing holds their lease (another worker) and that "
            "the app is started; raise `timeout=` for big logs."
        )
