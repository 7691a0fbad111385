"""``outbox_status(app)``: what waits in the outbox, and how its relay loops are set, per transport.

One app may have several transports, each with a relay loop of its own and maybe settings of
its own (``OutboxModule.register(relays=...)``). ``dockyard outbox status`` prints this; an
admin endpoint can return it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dockyard.app import App  # read by get_type_hints (public path check); no cycle
from dockyard.modules import ServiceHealth
from dockyard.outbox._message import OutboxStatus
from dockyard.outbox._module import OutboxExtension
from dockyard.outbox._settings import RelaySettings
from dockyard.outbox._store import OutboxStore
from dockyard.outbox._transports import relay_name

__all__ = ["TransportStatus", "outbox_status"]


@dataclass(frozen=True, slots=True)
class TransportStatus:
    """One transport of the app: its relay loop and the outbox messages it relays.

    Attributes:
        name: The transport's name (the prefix of its destinations; the first transport's
            is its scheme, ``"default"`` without one).
        relay: The relay loop's service name (``outbox-relay``, ``outbox-relay:<name>``);
            ``None`` when the app runs no relay (``run_relay=False``).
        settings: The loop's settings: its own (``relays={name: ...}``) or the app's.
        counts: Messages per status over the transport's destinations (every status is
            there, 0 when none).
        destinations: The same, per destination.
        health: The loop's state in the worker of *this* process (``app.health()``), or
            ``None`` when no worker runs it here (a command-line process, or before
            ``run_worker``). A worker elsewhere reports its loops on its health endpoint.
    """

    name: str
    relay: str | None
    settings: RelaySettings
    counts: Mapping[OutboxStatus, int]
    destinations: Mapping[str, Mapping[OutboxStatus, int]]
    health: ServiceHealth | None


async def outbox_status(app: App) -> tuple[TransportStatus, ...]:
    """The outbox of a started ``app``, per transport, in the order they were registered.

    Each destination counted in the outbox belongs to the transport whose relay loop claims
    it: a prefixed one to the transport of that name, every other one to the first.

    Raises:
        LookupError: The app has no ``OutboxModule``.
    """
    extension = next(
        (e for n in app.graph.all_nodes for e in n.extensions if isinstance(e, OutboxExtension)),
        None,
    )
    if extension is None:
        msg = "the app has no outbox: import `OutboxModule.register(...)` in its root module"
        raise LookupError(msg)
    store = await app.get(OutboxStore)
    counted = await store.counts_by_destination()
    health = {s.name: s for s in app.health().services}
    found: list[TransportStatus] = []
    for named in extension.transports:
        mine = {d: c for d, c in counted.items() if named.destinations.matches(d)}
        relay = relay_name(named) if extension.run_relay else None
        found.append(
            TransportStatus(
                name=named.name,
                relay=relay,
                settings=extension.config.relay_of(named.name),
                counts={s: sum(c.get(s, 0) for c in mine.values()) for s in OutboxStatus},
                destinations=mine,
                health=None if relay is None else health.get(relay),
            )
        )
    return tuple(found)
