"""``@handler``: an ``async def`` whose first parameter is the message and whose others are
injected, registered like a handler class (python-cq and the template write them so)."""

from __future__ import annotations

import collections.abc
import inspect
import types
from collections.abc import Callable
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from dockyard._type_name import type_name
from dockyard.messaging._handlers import (
    ChainHandler,
    EventHandler,
    RequestHandler,
    StreamHandler,
)
from dockyard.messaging._messages import Event, Request, StreamRequest

__all__ = ["as_handler_class", "handler"]

F = TypeVar("F", bound=Callable[..., Any])

_CLASS_ATTR = "__dockyard_handler__"


def handler(function: F, /) -> F:
    """Make ``function`` a handler: list it in ``@module(handlers=[...])`` like a class.

    Its first parameter's annotation is the message type (a ``Command``/``Query``, a
    ``StreamRequest`` for an ``async def`` that yields, or an ``Event``); every other
    parameter is resolved from the container by its annotation, per scope, with the same
    visibility rules and build-time checks as a handler class's constructor. The function is
    returned unchanged: it can still be called directly.

    A function whose second parameter is annotated ``Callable[[], Awaitable[Result]]`` is a
    link of a chain of responsibility (a ``ChainHandler``): it gets the next link there, to
    ``return await call_next()`` when it does not answer; the parameters after it are
    injected.

    Raises:
        TypeError: ``function`` is not an ``async def``, has no message parameter, or a
            parameter has no annotation; a chain link's message is not a request.
    """
    setattr(function, _CLASS_ATTR, _handler_class(function))
    return function


def as_handler_class(entry: Any) -> Any:
    """The handler class behind a ``@handler`` function; anything else as it is."""
    return getattr(entry, _CLASS_ATTR, entry) if not isinstance(entry, type) else entry


def _handler_class(function: Callable[..., Any]) -> type:
    name = getattr(function, "__qualname__", repr(function))
    stream = inspect.isasyncgenfunction(function)
    if not (stream or inspect.iscoroutinefunction(function)):
        msg = f"@handler needs an `async def`; `{name}` is not one"
        raise TypeError(msg)
    hints = get_type_hints(function, include_extras=True)
    parameters = list(inspect.signature(function).parameters.values())
    if not parameters:
        msg = f"@handler `{name}` takes no message: its first parameter is the message"
        raise TypeError(msg)
    first, *rest = parameters
    missing = [p.name for p in parameters if p.name not in hints]
    if missing:
        names = ", ".join(f"`{n}`" for n in missing)
        msg = (
            f"@handler `{name}`: parameter(s) {names} have no annotation. Hint: annotate the "
            "message parameter with its type and each other parameter with the type to inject"
        )
        raise TypeError(msg)
    message = hints[first.name]
    chain = bool(rest) and _is_call_next(hints[rest[0].name])
    if chain:
        rest = rest[1:]
        base = _chain_base(message, stream=stream, name=name)
    else:
        base = _base(message, stream=stream, name=name)
    deps = {p.name: hints[p.name] for p in rest}

    def __init__(self: Any, **dependencies: Any) -> None:  # noqa: N807
        self._dependencies = dependencies

    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            *(
                inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=tp)
                for n, tp in deps.items()
            ),
        ]
    )
    __init__.__annotations__ = {**deps, "return": None}

    if chain:

        async def handle(self: Any, message: Any, call_next: Any, /) -> Any:
            return await function(message, call_next, **self._dependencies)

    elif stream:

        def handle(self: Any, message: Any, /) -> Any:  # type: ignore[misc]
            return function(message, **self._dependencies)

    else:

        async def handle(self: Any, message: Any, /) -> Any:  # type: ignore[misc]
            return await function(message, **self._dependencies)

    def fill(namespace: dict[str, Any]) -> None:
        namespace.update(
            __init__=__init__,
            handle=handle,
            __module__=function.__module__,
            __qualname__=name,
            __doc__=function.__doc__,
            __slots__=("_dependencies",),
        )

    return types.new_class(name.rpartition(".")[2], (base,), {}, fill)


def _is_call_next(annotation: Any) -> bool:
    """Whether ``annotation`` is ``Callable[[], Awaitable[...]]`` (a chain link's next)."""
    if get_origin(annotation) is not collections.abc.Callable:
        return False
    arguments = get_args(annotation)
    if len(arguments) != 2 or arguments[0] != []:  # (parameters, result)
        return False
    return get_origin(arguments[1]) in (collections.abc.Awaitable, collections.abc.Coroutine)


def _chain_base(message: Any, *, stream: bool, name: str) -> Any:
    if not stream and isinstance(message, type) and issubclass(message, Request):
        return ChainHandler[message, Any]
    what = "an `async def` that yields" if stream else f"typed `{type_name(message)}`"
    msg = (
        f"@handler `{name}` takes a `call_next` (its second parameter is typed "
        f"`Callable[[], Awaitable[...]]`), which makes it a link of a chain of "
        f"responsibility, but its message is {what}: a chain answers a `Command` or a "
        "`Query`. Hint: type the first parameter with the request the chain answers, or "
        "drop the `call_next` parameter"
    )
    raise TypeError(msg)


def _base(message: Any, *, stream: bool, name: str) -> Any:
    origin = get_origin(message)  # a parametrized event, ``Notice[UserLeft]``
    if isinstance(origin, type) and issubclass(origin, Event) and not stream:
        return EventHandler[message]
    if isinstance(message, type):
        if stream and issubclass(message, StreamRequest):
            return StreamHandler[message, Any]
        if not stream and issubclass(message, Request):
            return RequestHandler[message, Any]
        if not stream and issubclass(message, Event):
            return EventHandler[message]
    what = "a `StreamRequest`" if stream else "a `Command`, `Query` or `Event`"
    msg = (
        f"@handler `{name}`: its first parameter is typed `{type_name(message)}`, not {what}. "
        "Hint: the first parameter is the message; an `async def` that yields answers a "
        "`StreamRequest`"
    )
    raise TypeError(msg)
