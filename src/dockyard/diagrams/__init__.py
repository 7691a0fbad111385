"""What an app is made of, as data and as diagrams (Mermaid or Graphviz DOT).

``describe(app)`` reads a built app without starting it: its modules (imports, exports,
providers), message types with their handlers and behaviors, outbox routes, consumer
endpoints, background services and sagas. ``mermaid(app, view)`` and ``dot(app, view)``
draw one view of it: ``"modules"``, ``"messages"``, ``"saga"`` or ``"chain"`` (the last two
with a name). ``dockyard describe`` and ``dockyard graph`` print the same. See ``docs/cli.md``.
"""

from dockyard._public import use_public_paths
from dockyard.diagrams._description import (
    AppDescription,
    EndpointDescription,
    HandlerDescription,
    MessageDescription,
    ModuleDescription,
    ProviderDescription,
    RouteDescription,
    SagaDescription,
    SagaStepDescription,
    describe,
)
from dockyard.diagrams._views import VIEWS, View, chains, dot, mermaid

__all__ = [
    "VIEWS",
    "AppDescription",
    "EndpointDescription",
    "HandlerDescription",
    "MessageDescription",
    "ModuleDescription",
    "ProviderDescription",
    "RouteDescription",
    "SagaDescription",
    "SagaStepDescription",
    "View",
    "chains",
    "describe",
    "dot",
    "mermaid",
]

use_public_paths(__name__, __all__)
