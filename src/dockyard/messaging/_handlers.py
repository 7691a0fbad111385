"""Handler base classes. The message type is read from the generic base at build time."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

__all__ = [
    "ChainHandler",
    "CommandHandler",
    "EventHandler",
    "QueryHandler",
    "RequestHandler",
    "StreamHandler",
]

Req = TypeVar("Req")
Res = TypeVar("Res")
E = TypeVar("E")
T = TypeVar("T")


class RequestHandler(abc.ABC, Generic[Req, Res]):
    """Answers one request type. Constructor parameters are injected by type.

    Example::

        class PlaceOrderHandler(CommandHandler[PlaceOrder, OrderId]):
            def __init__(self, orders: OrderRepository) -> None:
                self._orders = orders

            async def handle(self, request: PlaceOrder) -> OrderId: ...
    """

    __slots__ = ()

    @abc.abstractmethod
    async def handle(self, request: Req, /) -> Res:
        """Handle ``request`` and return the answer."""


CommandHandler = RequestHandler
"""``RequestHandler`` under the name that reads best for a command."""

QueryHandler = RequestHandler
"""``RequestHandler`` under the name that reads best for a query."""


class ChainHandler(abc.ABC, Generic[Req, Res]):
    """One link of a chain of responsibility for a request type.

    Every ``ChainHandler`` registered for the same request joins one chain, in registration
    order (module init order, then the order of ``handlers=[...]``). Each link answers, or
    passes the request on with ``await call_next()``. If the last link passes it on,
    ``ChainExhaustedError`` is raised.
    """

    __slots__ = ()

    @abc.abstractmethod
    async def handle(self, request: Req, call_next: Callable[[], Awaitable[Res]], /) -> Res:
        """Answer ``request``, or return ``await call_next()`` to let the next link try."""


class EventHandler(abc.ABC, Generic[E]):
    """Reacts to one event type and to its subclasses."""

    __slots__ = ()

    @abc.abstractmethod
    async def handle(self, event: E, /) -> None:
        """React to ``event``."""


class StreamHandler(abc.ABC, Generic[Req, T]):
    """Answers one stream request type with items, as they become available.

    Implement ``handle`` as an async generator (``async def`` with ``yield``).
    """

    __slots__ = ()

    @abc.abstractmethod
    def handle(self, request: Req, /) -> AsyncIterator[T]:
        """Yield the answer to ``request`` item by item."""
