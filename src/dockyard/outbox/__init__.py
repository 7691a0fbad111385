"""Reliable delivery: routes, the transactional outbox, the relay, the inbox, dead letters.

``route(OrderPlaced).to("orders")`` makes publishing ``OrderPlaced`` write an outbox row in the
scope's transaction; the relay (in the worker) publishes committed rows through a
``Transport``, scheduled ones (``Outbox.add(..., deliver_at=...)``) once they are due. The
receiving side is ``dockyard.consumer``: its consumers deduplicate with the ``Inbox`` kept
here (in the same storage as the outbox) before handing messages to the mediator. See
``docs/outbox.md``, ``docs/design/outbox-relay.md`` and
``docs/design/scheduled-messages.md``.
"""

from dockyard._public import use_public_paths
from dockyard.outbox._backend import OutboxBackend
from dockyard.outbox._dead_letters import DeadLetters
from dockyard.outbox._destinations import ClaimsByDestination, Destinations
from dockyard.outbox._message import OutboxMessage, OutboxStatus
from dockyard.outbox._module import OutboxModule
from dockyard.outbox._out_of_band import OutOfBand, out_of_band, out_of_band_of
from dockyard.outbox._outbox import Outbox
from dockyard.outbox._relay import OutboxRelay, RelayResult
from dockyard.outbox._routing import Route, RouteBuilder, route, route_of
from dockyard.outbox._settings import OutboxConfig, RelaySettings
from dockyard.outbox._status import TransportStatus, outbox_status
from dockyard.outbox._store import (
    Cancellation,
    ClaimedBatch,
    Inbox,
    OutboxStore,
    OutboxWriter,
    Promotion,
)
from dockyard.outbox._transports import NamedTransport, Transports

__all__ = [
    "Cancellation",
    "ClaimedBatch",
    "ClaimsByDestination",
    "DeadLetters",
    "Destinations",
    "Inbox",
    "NamedTransport",
    "OutOfBand",
    "Outbox",
    "OutboxBackend",
    "OutboxConfig",
    "OutboxMessage",
    "OutboxModule",
    "OutboxRelay",
    "OutboxStatus",
    "OutboxStore",
    "OutboxWriter",
    "Promotion",
    "RelayResult",
    "RelaySettings",
    "Route",
    "RouteBuilder",
    "TransportStatus",
    "Transports",
    "out_of_band",
    "out_of_band_of",
    "outbox_status",
    "route",
    "route_of",
]

use_public_paths(__name__, __all__)
