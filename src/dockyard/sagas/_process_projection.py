"""The event-store-sourced process manager: a catch-up projection that applies each event to
its instance in the transaction that moves the checkpoint, so each event is applied once,
across crashes and restarts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dockyard.projections import Projection, handles
from dockyard.sagas._process import ProcessManager, ProcessRoute, RouteKind
from dockyard.sagas._process_runtime import ProcessRuntime

__all__ = ["process_projection"]


class _ProcessProjection(Projection):
    """Applies events to process manager instances (subclassed per process manager)."""

    def __init__(self, runtime: ProcessRuntime) -> None:
        self._runtime = runtime


def process_projection(process: ProcessManager[Any]) -> type[Projection]:
    """The catch-up projection that feeds ``process`` (declared with ``source="event_store"``)
    from the event log: register it with ``ProjectionsModule.register(projections=[...])``.

    Its checkpoint is named ``process-<name>``; the instance, the handlers' writes and the
    checkpoint commit together, one batch of events at a time.

    Raises:
        ValueError: ``process`` is not declared with ``source="event_store"``.
    """
    if process.source != "event_store":
        msg = (
            f"process manager `{process.name}` is fed by messages; declare it with "
            '`source="event_store"` to feed it from the event log'
        )
        raise ValueError(msg)

    def applier(route: ProcessRoute) -> Callable[[Any, Any], Awaitable[None]]:
        async def apply(self: _ProcessProjection, event: Any) -> None:
            await self._runtime.apply(process, route, event)

        return apply

    namespace: dict[str, Any] = {"name": f"process-{process.name}", "__module__": __name__}
    for number, route in enumerate(process.handlers):
        if route.kind is not RouteKind.TIMEOUT:  # timeouts are messages, not events
            namespace[f"apply_{number}"] = handles(route.message)(applier(route))
    return type(f"{process.name}_process_projection", (_ProcessProjection,), namespace)
