"""``out_of_band(Handler, destination=...)``: one event handler runs in the worker, the others
inline.

The stand-in class it makes takes the handler's place in a module's ``handlers=[...]``. When
the event is published, the stand-in writes it to the outbox in the publishing scope's
transaction, for ``destination``, with the handler's name in the ``dockyard-handler`` header;
the handler itself is provided by that module and kept out of the event's inline plan. The
relay publishes the message; the app's consumer of ``destination`` (``listen(...)``) sees the
header and runs that handler only (``MessageBus.run_handler``), in a scope of its own, behind
the inbox, with the endpoint's retries and dead letters.

At build, ``check_delivery`` refuses an out-of-band handler no endpoint of the app listens
for, and a route to a destination the app consumes itself (its events would come back).
"""

from __future__ import annotations

import abc
import types
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dockyard._type_name import type_name
from dockyard.exceptions import (
    ConsumedRouteError,
    InvalidRouteError,
    ModuleProblem,
    OutOfBandWithoutConsumerError,
)
from dockyard.messaging._handlers import EventHandler
from dockyard.messaging._introspect import HandlerKind, generic_args, handler_kind
from dockyard.messaging._out_of_band import RUNS, handler_name
from dockyard.messaging._registry import MessageRegistry
from dockyard.outbox._outbox import OUT_OF_BAND_HANDLER, Outbox
from dockyard.outbox._routing import route_of

__all__ = [
    "OUT_OF_BAND_HANDLER",
    "Listens",
    "OutOfBand",
    "check_delivery",
    "out_of_band",
    "out_of_band_of",
]


@dataclass(frozen=True, slots=True)
class OutOfBand:
    """A handler that runs out of band, and the destination its events go through."""

    handler: type
    destination: str


def out_of_band(handler: type, *, destination: str) -> type[Any]:
    """A stand-in for ``handler`` to list in a module's ``handlers=[...]`` instead of it.

    Publishing the event then runs the module's other handlers inline and writes the event to
    the outbox for ``destination``, in the same transaction; the app's consumer of
    ``destination`` runs ``handler`` (only it) when the message arrives. List
    ``listen(destination, group=...)`` in the app's ``ConsumerModule``.

    Example:
        ``handlers=[CreateProfile, out_of_band(SendWelcomeEmail, destination="emails")]``

    Raises:
        InvalidRouteError: ``handler`` is not an event handler class, or ``destination``
            is empty.
    """
    listed: object = handler  # anything may be passed at run time
    found = handler_kind(handler) if isinstance(listed, type) else None
    if found is None or found[0] is not HandlerKind.EVENT:
        raise InvalidRouteError(
            handler, "only an event handler class (`EventHandler[E]`) runs out of band"
        )
    if out_of_band_of(handler) is not None:
        raise InvalidRouteError(handler, "it is already a handler run out of band")
    if not destination.strip():
        raise InvalidRouteError(handler, f"the destination {destination!r} is empty")
    args = generic_args(handler, EventHandler)
    if not args:
        raise InvalidRouteError(handler, "it names no event type (`EventHandler[E]`)")
    return _stand_in(OutOfBand(handler, destination), args[0])


def out_of_band_of(handler: object) -> OutOfBand | None:
    """What a stand-in made by ``out_of_band(...)`` runs, and through where; else ``None``."""
    found = getattr(handler, "__dict__", {}).get("__dockyard_out_of_band__")
    return found if isinstance(found, OutOfBand) else None


def _stand_in(target: OutOfBand, event_type: Any) -> type[Any]:
    destination = target.destination
    headers = {OUT_OF_BAND_HANDLER: handler_name(target.handler)}

    def __init__(self: Any, outbox: Outbox) -> None:  # noqa: N807 - it is the constructor
        self._outbox = outbox

    __init__.__annotations__ = {"outbox": Outbox, "return": None}

    async def handle(self: Any, event: Any, /) -> None:
        # A message of its own (a new id, the event's id as causation): one per handler.
        await self._outbox.add(event, destination=destination, headers=headers)

    name = f"OutOfBand[{type_name(target.handler)} → {destination}]"

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(
            __slots__=("_outbox",),
            __init__=__init__,
            handle=handle,
            __module__=target.handler.__module__,
            __qualname__=name,
            __dockyard_out_of_band__=target,
        )
        namespace[RUNS] = target.handler

    base: Any = EventHandler[event_type]
    return types.new_class(name, (base,), {}, body)


class Listens(abc.ABC):
    """An extension that receives from destinations (``ConsumerModule``'s): what
    ``check_delivery`` holds routes and out-of-band handlers against."""

    __slots__ = ()

    @property
    @abc.abstractmethod
    def listens_to(self) -> dict[str, str]:
        """Each destination received, with the name of the endpoint receiving it."""


def check_delivery(messages: MessageRegistry, extensions: Iterable[object]) -> list[ModuleProblem]:
    """Routes to a destination the app consumes, out-of-band handlers nobody receives."""
    listened: dict[str, str] = {}
    for extension in extensions:
        if isinstance(extension, Listens):
            listened.update(extension.listens_to)
    problems: list[ModuleProblem] = []
    seen: set[type] = set()
    for info in messages:
        for handler in info.handlers:
            if handler.handler in seen:
                continue
            seen.add(handler.handler)
            route = route_of(handler.handler)
            if route is not None and route.destination in listened:
                endpoint = listened[route.destination]
                problems.append(
                    ConsumedRouteError(
                        handler.module, route.message_type, route.destination, endpoint
                    )
                )
            target = out_of_band_of(handler.handler)
            if target is not None and target.destination not in listened:
                problems.append(
                    OutOfBandWithoutConsumerError(
                        handler.module, target.handler, target.destination
                    )
                )
    return problems
