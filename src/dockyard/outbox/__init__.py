"""Reliable delivery: routes, the transactional outbox, the relay, the inbox, dead letters.

``route(OrderPlaced).to("orders")`` makes publishing ``OrderPlaced`` write an outbox row in the
scope's transaction; the relay (in the worker) publishes committed rows through a
``Transport``; consumers deduplicate with the ``Inbox`` before handing messages to the
mediator. See ``docs/outbox.md`` and ``docs/design/outbox-relay.md``.
"""

from dockyard._public import use_public_paths
from dockyard.outbox._backend import OutboxBackend
from dockyard.outbox._consumer import Consume, ConsumeOutcome, Consumer, consume
from dockyard.outbox._dead_letters import DeadLetters
from dockyard.outbox._message import OutboxMessage, OutboxStatus
from dockyard.outbox._module import OutboxModule
from dockyard.outbox._outbox import Outbox
from dockyard.outbox._relay import OutboxRelay, RelayResult
from dockyard.outbox._retry import RetryPolicy
from dockyard.outbox._routing import Route, RouteBuilder, route, route_of
from dockyard.outbox._settings import OutboxConfig, RelaySettings
from dockyard.outbox._store import ClaimedBatch, Inbox, OutboxStore, OutboxWriter

__all__ = [
    "ClaimedBatch",
    "Consume",
    "ConsumeOutcome",
    "Consumer",
    "DeadLetters",
    "Inbox",
    "Outbox",
    "OutboxBackend",
    "OutboxConfig",
    "OutboxMessage",
    "OutboxModule",
    "OutboxRelay",
    "OutboxStatus",
    "OutboxStore",
    "OutboxWriter",
    "RelayResult",
    "RelaySettings",
    "RetryPolicy",
    "Route",
    "RouteBuilder",
    "consume",
    "route",
    "route_of",
]

use_public_paths(__name__, __all__)
