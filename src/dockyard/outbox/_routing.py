"""``route(E).to(destination)``: send a message type to another service through the outbox.

A route is a message handler: list it in a module's ``handlers=[...]`` (or in
``OutboxModule.register(routes=[...])``) and ``app.messages`` shows it like any other. For an
event it is one more ``EventHandler``, so local handlers still run; for a command it is *the*
handler, which writes the command to the outbox and returns ``None`` (fire and forget).
Unrouted events stay local.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from dockyard._type_name import type_name
from dockyard.exceptions import InvalidRouteError
from dockyard.messaging._handlers import EventHandler, RequestHandler
from dockyard.messaging._messages import Request, StreamRequest
from dockyard.outbox._outbox import Outbox

__all__ = ["Route", "RouteBuilder", "route", "route_of"]

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Route(Generic[M]):
    """Where messages of ``message_type`` go, and how their partition key is chosen."""

    message_type: type[M]
    destination: str
    partition_key: Callable[[M], str] | None = None

    def key_of(self, message: M) -> str | None:
        return None if self.partition_key is None else self.partition_key(message)


class RouteBuilder(Generic[M]):
    """The result of ``route(E)``; finish it with ``.to(destination)``."""

    __slots__ = ("_message_type",)

    def __init__(self, message_type: type[M]) -> None:
        self._message_type = message_type

    def to(self, destination: str, *, partition_key: Callable[[M], str] | None = None) -> type[Any]:
        """A handler class that writes each message of this type to the outbox.

        Args:
            destination: Where the relay publishes, e.g. ``"orders"`` or ``"rabbit://orders"``.
            partition_key: Gives the key of a message (e.g. ``lambda e: e.order_id``):
                messages sharing a key are published and consumed in order.

        Raises:
            InvalidRouteError: ``destination`` is empty or the type is a stream request.
        """
        message_type = self._message_type
        if not destination.strip():
            raise InvalidRouteError(message_type, f"the destination {destination!r} is empty")
        if issubclass(message_type, StreamRequest):
            raise InvalidRouteError(
                message_type,
                "a stream request needs an answer, which a remote endpoint "
                "reached through the outbox cannot give",
            )
        return _handler(Route(message_type, destination, partition_key))


def route(message_type: type[M]) -> RouteBuilder[M]:
    """Start a route: ``route(OrderPlaced).to("orders", partition_key=lambda e: e.order_id)``.

    Raises:
        InvalidRouteError: ``message_type`` is not a class.
    """
    if not isinstance(message_type, type):
        raise InvalidRouteError(message_type, "it is not a message class")
    return RouteBuilder(message_type)


def route_of(handler: object) -> Route[Any] | None:
    """The route behind a handler class made by ``route(...).to(...)``, else ``None``."""
    found = getattr(handler, "__dict__", {}).get("__dockyard_route__")
    return found if isinstance(found, Route) else None


def _handler(target: Route[Any]) -> type[Any]:
    destination, key_of = target.destination, target.key_of
    is_request = issubclass(target.message_type, Request)

    def __init__(self: Any, outbox: Outbox) -> None:  # noqa: N807 - it is the constructor
        self._outbox = outbox

    __init__.__annotations__ = {"outbox": Outbox, "return": None}

    async def handle(self: Any, message: Any, /) -> None:
        await self._outbox.forward(message, destination=destination, partition_key=key_of(message))

    name = f"Route[{type_name(target.message_type)} → {destination}]"

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(
            __slots__=("_outbox",),
            __init__=__init__,
            handle=handle,
            __module__=target.message_type.__module__,
            __qualname__=name,
            __dockyard_route__=target,
        )

    base: Any = (
        RequestHandler[target.message_type, None]  # type: ignore[name-defined]
        if is_request
        else EventHandler[target.message_type]  # type: ignore[name-defined]
    )
    return types.new_class(name, (base,), {}, body)
