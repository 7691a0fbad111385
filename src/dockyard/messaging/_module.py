"""The built-in global module that makes the bus injectable in every module."""

from __future__ import annotations

from dishka import AsyncContainer

from dockyard.di import Lifetime, contextual, scoped
from dockyard.messaging._bus import Dispatcher, MessageBus
from dockyard.messaging._envelope import MessageContext
from dockyard.messaging._interfaces import IMessageBus, IPublisher, ISender
from dockyard.modules import module
from dockyard.telemetry._instruments import Instruments

__all__ = ["MessagingModule"]


def make_bus(dispatcher: Dispatcher, container: AsyncContainer) -> IMessageBus:
    """The scope's bus; ``container`` is the request scope it is resolved in."""
    return MessageBus(dispatcher, container)


def make_sender(bus: IMessageBus) -> ISender:
    return bus


def make_publisher(bus: IMessageBus) -> IPublisher:
    return bus


@module(
    providers=[
        contextual(Dispatcher, lifetime=Lifetime.SINGLETON),
        contextual(MessageContext, lifetime=Lifetime.SINGLETON),
        contextual(Instruments, lifetime=Lifetime.SINGLETON),
        scoped(make_bus),
        scoped(make_sender),
        scoped(make_publisher),
    ],
    exports=[IMessageBus, ISender, IPublisher, MessageContext, Instruments],
    is_global=True,
)
class MessagingModule:
    """Added to every app by ``App.build``: exports ``ISender``, ``IPublisher``,
    ``IMessageBus``, ``MessageContext`` and the app's telemetry ``Instruments`` to all
    modules."""
