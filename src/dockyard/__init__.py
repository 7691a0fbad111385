"""dockyard: a framework for Python backends that grow."""

from dockyard._public import use_public_paths
from dockyard.app import App, Lifespan
from dockyard.di import Lifetime, contextual, many, object_, scoped, singleton, transient
from dockyard.exceptions import DockyardError
from dockyard.messaging import (
    Command,
    CommandHandler,
    Event,
    EventHandler,
    IMessageBus,
    IPublisher,
    ISender,
    Query,
    QueryHandler,
    Request,
    RequestHandler,
    StreamHandler,
    StreamRequest,
)
from dockyard.modules import DynamicModule, module

__all__ = [
    "App",
    "Command",
    "CommandHandler",
    "DockyardError",
    "DynamicModule",
    "Event",
    "EventHandler",
    "IMessageBus",
    "IPublisher",
    "ISender",
    "Lifespan",
    "Lifetime",
    "Query",
    "QueryHandler",
    "Request",
    "RequestHandler",
    "StreamHandler",
    "StreamRequest",
    "contextual",
    "many",
    "module",
    "object_",
    "scoped",
    "singleton",
    "transient",
]

use_public_paths(__name__, __all__)
