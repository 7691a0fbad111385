"""Messaging: commands, queries, events and streams, their handlers, and the bus between them.

Handlers are registered per module (``@module(handlers=[...])``) and resolved with that
module's visibility. ``ISender``, ``IPublisher`` and ``IMessageBus`` are injectable in every
module; ``App.send``, ``App.publish`` and ``App.stream`` open a scope for you.
See ``docs/messaging.md``.
"""

from dockyard._public import use_public_paths
from dockyard.messaging._behavior import PipelineBehavior
from dockyard.messaging._breaker import CircuitBreakerBehavior
from dockyard.messaging._envelope import Envelope, MessageContext
from dockyard.messaging._function import handler
from dockyard.messaging._handlers import (
    ChainHandler,
    CommandHandler,
    EventHandler,
    QueryHandler,
    RequestHandler,
    StreamHandler,
)
from dockyard.messaging._interfaces import IMessageBus, IPublisher, ISender
from dockyard.messaging._logging import LoggingBehavior
from dockyard.messaging._messages import Command, Event, Query, Request, StreamRequest
from dockyard.messaging._registry import HandlerInfo, MessageInfo, MessageRegistry
from dockyard.messaging._settings import EventDelivery, MessagingSettings
from dockyard.messaging._transactional import TransactionalBehavior, UnitOfWork

__all__ = [
    "ChainHandler",
    "CircuitBreakerBehavior",
    "Command",
    "CommandHandler",
    "Envelope",
    "Event",
    "EventDelivery",
    "EventHandler",
    "HandlerInfo",
    "IMessageBus",
    "IPublisher",
    "ISender",
    "LoggingBehavior",
    "MessageContext",
    "MessageInfo",
    "MessageRegistry",
    "MessagingSettings",
    "PipelineBehavior",
    "Query",
    "QueryHandler",
    "Request",
    "RequestHandler",
    "StreamHandler",
    "StreamRequest",
    "TransactionalBehavior",
    "UnitOfWork",
    "handler",
]

use_public_paths(__name__, __all__)
