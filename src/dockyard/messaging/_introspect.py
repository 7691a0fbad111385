"""Read a handler's or a behavior's message type from its generic base, once, at build time."""

from __future__ import annotations

import enum
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from dockyard.messaging._handlers import ChainHandler, EventHandler, RequestHandler, StreamHandler

__all__ = [
    "HandlerKind",
    "generic_args",
    "handler_kind",
    "message_class",
    "parameter_fields",
    "parametrized",
]


class HandlerKind(enum.Enum):
    REQUEST = "request"
    CHAIN = "chain"
    STREAM = "stream"
    EVENT = "event"


_BASES: tuple[tuple[type, HandlerKind], ...] = (
    (RequestHandler, HandlerKind.REQUEST),
    (ChainHandler, HandlerKind.CHAIN),
    (StreamHandler, HandlerKind.STREAM),
    (EventHandler, HandlerKind.EVENT),
)


def handler_kind(handler: type) -> tuple[HandlerKind, type] | None:
    """The kind of ``handler`` and the generic base it derives from, or ``None``."""
    for base, kind in _BASES:
        if issubclass(handler, base):
            return kind, base
    return None


def generic_args(cls: type, target: type) -> tuple[Any, ...] | None:
    """The arguments ``cls`` gives ``target``'s type parameters, following generic subclasses.

    ``class H(RequestHandler[PlaceOrder, str])`` gives ``(PlaceOrder, str)``; so does
    ``class Base(RequestHandler[M, str], Generic[M])`` then ``class H(Base[PlaceOrder])``.
    Unbound parameters come back as ``TypeVar``; ``None`` means ``target`` is not a base.
    """
    stack: list[tuple[Any, dict[Any, Any]]] = [(cls, {})]
    seen: set[int] = set()
    while stack:
        tp, substitution = stack.pop()
        origin = get_origin(tp) or tp
        args = tuple(substitution.get(a, a) for a in get_args(tp))
        if origin is target:
            return args or tuple(getattr(target, "__parameters__", ()))
        if not isinstance(origin, type) or id(tp) in seen:
            continue
        seen.add(id(tp))
        mapping = dict(zip(getattr(origin, "__parameters__", ()), args, strict=False))
        bases = origin.__dict__.get("__orig_bases__", origin.__bases__)
        stack.extend((base, mapping) for base in reversed(bases))
    return None


def message_class(arg: Any) -> type | None:
    """The runtime class a type argument names (``GetItem[int]`` → ``GetItem``), or ``None``."""
    if isinstance(arg, TypeVar) or arg is Any:
        return None
    origin = get_origin(arg)
    if isinstance(origin, type):
        return origin
    return arg if isinstance(arg, type) else None


def parametrized(arg: Any) -> tuple[type, tuple[Any, ...]] | None:
    """``(origin, args)`` for a parametrized generic class (``Notice[UserLeft]``), else ``None``.

    A class that is itself concrete (a pydantic generic model's ``Notice[UserLeft]`` is a real
    subclass) gives ``None``: dispatch on it is by class already.
    """
    origin = get_origin(arg)
    args = get_args(arg)
    if isinstance(origin, type) and args:
        return origin, args
    return None


def parameter_fields(origin: type) -> tuple[str | None, ...]:
    """For each type parameter of ``origin``, the field annotated with exactly it, or ``None``.

    ``class Notice(Event, Generic[P])`` with ``payload: P`` gives ``("payload",)``: the type of
    an instance's ``payload`` is what ``Notice[...]`` is parametrized with at run time (a
    dataclass instance does not keep the arguments it was built with).
    """
    try:
        hints = get_type_hints(origin)
    except Exception:  # noqa: BLE001 - unresolvable annotations: no field is known
        hints = {}
    found: list[str | None] = []
    for parameter in getattr(origin, "__parameters__", ()):
        names = [name for name, hint in hints.items() if hint is parameter]
        found.append(names[0] if names else None)
    return tuple(found)
