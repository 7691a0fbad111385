"""Handlers that run out of band: what messaging knows of them.

``dockyard.outbox.out_of_band(H, destination=...)`` makes a stand-in handler class that a
module lists instead of ``H``. The stand-in runs inline, in ``H``'s place: it writes the event
to the outbox with ``H``'s name in a header. ``H`` itself is provided by the same module (so
it keeps that module's visibility) and compiled into a plan of its own, outside the event's
inline plan; the consumer that receives the message runs that plan (``MessageBus.run_handler``).
"""

from __future__ import annotations

__all__ = ["handler_name", "runs_out_of_band"]

RUNS = "__dockyard_runs__"
"""The attribute of a stand-in class that names the handler class it runs out of band."""


def runs_out_of_band(stand_in: object) -> type | None:
    """The handler class a stand-in made by ``out_of_band(...)`` runs, else ``None``."""
    found = getattr(stand_in, "__dict__", {}).get(RUNS)
    return found if isinstance(found, type) else None


def handler_name(handler: type) -> str:
    """The name a message carries to say which handler runs it: stable across the processes
    of one app (module and qualified name), unlike the class object."""
    return f"{handler.__module__}.{handler.__qualname__}"
