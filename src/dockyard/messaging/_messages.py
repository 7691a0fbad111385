"""Message base classes: requests (commands, queries), stream requests and events.

They carry no fields and no behaviour: a message is any class you like (a dataclass first, or a
pydantic model, a msgspec ``Struct``, an attrs class) that also names what it is by subclassing
one of these. The type parameter is the answer a handler gives, so ``send`` is typed end to end.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Command", "Event", "Query", "Request", "StreamRequest"]

R_co = TypeVar("R_co", covariant=True)
T_co = TypeVar("T_co", covariant=True)


class Request(Generic[R_co]):
    """A message with exactly one handler, which answers with an ``R``.

    Example::

        @dataclass(frozen=True, slots=True, kw_only=True)
        class GetOrder(Query[OrderView]):
            order_id: str
    """

    __slots__ = ()


class Command(Request[R_co]):
    """A request that changes state. Behaviors can target commands only (e.g. transactions)."""

    __slots__ = ()


class Query(Request[R_co]):
    """A request that reads state and changes nothing."""

    __slots__ = ()


class StreamRequest(Generic[T_co]):
    """A request whose one handler yields ``T`` items as they become available."""

    __slots__ = ()


class Event:
    """Something that happened. Zero or more handlers react to it; none is fine."""

    __slots__ = ()
