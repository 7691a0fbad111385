"""Dispatch plans: per message type, compiled once when the app is built.

A plan holds precomputed Dishka keys and the behaviors that wrap each handler, so a call does
no inspection, builds no keys and raises nothing to find its way.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from dishka.entities.key import DependencyKey

from dockyard._type_name import type_name
from dockyard.exceptions import ChainExhaustedError

if TYPE_CHECKING:  # annotations only: plans never go through the container
    from dockyard.messaging._bus import MessageBus
    from dockyard.messaging._introspect import HandlerKind
    from dockyard.messaging._settings import EventDelivery

__all__ = [
    "BehaviorRef",
    "ChainPlan",
    "EventPlan",
    "HandlerRef",
    "RequestPlan",
    "StreamPlan",
    "handle_call",
    "run_pipeline",
    "stream_of",
]


class HandlerRef:
    """One registered handler: its class, module and precomputed key. Hashed by identity, so
    a scope's cache lookup is one pointer hash."""

    __slots__ = (
        "behaviors",
        "collects",
        "handler",
        "key",
        "kind",
        "message_args",
        "message_fields",
        "message_type",
        "module",
    )

    def __init__(
        self,
        handler: type,
        module: str,
        component: str,
        kind: HandlerKind,
        message_type: type,
    ) -> None:
        self.handler = handler
        self.module = module
        self.key = DependencyKey(handler, component)
        self.kind = kind
        self.message_type = message_type
        self.behaviors: tuple[BehaviorRef, ...] = ()
        """Behaviors given for this handler class (``handler_behaviors``)."""
        self.message_args: tuple[type, ...] | None = None
        """For a handler of ``Notice[UserLeft]``: ``(UserLeft,)``; it takes only the
        ``Notice`` events whose parameter fields hold those types (``object`` takes any)."""
        self.message_fields: tuple[str, ...] = ()
        """The fields of ``message_type`` typed with its parameters, in parameter order."""
        self.collects = collects_events(handler)
        """The class has an ``events`` attribute (python-cqrs style): the events it holds
        after ``handle`` returns are published (``publish_collected``)."""

    def takes(self, actual: Mapping[str, type]) -> bool:
        """Whether an event whose parameter fields hold the ``actual`` types is for this
        handler (always, for a handler of an unparametrized type)."""
        wanted = self.message_args
        return wanted is None or all(
            issubclass(actual[field], want)
            for field, want in zip(self.message_fields, wanted, strict=True)
        )

    @property
    def name(self) -> str:
        return type_name(self.handler)

    def __repr__(self) -> str:
        return f"<HandlerRef {self.name} in {self.module}>"


class BehaviorRef:
    """A behavior: a shared instance, or a class resolved (once per scope) by ``key``."""

    __slots__ = ("applies_to", "instance", "key", "name")

    def __init__(self, instance: Any, key: Any, name: str, applies_to: type) -> None:
        self.instance = instance
        self.key = key
        self.name = name
        self.applies_to = applies_to

    def __repr__(self) -> str:
        return f"<BehaviorRef {self.name}>"


def collects_events(handler: type) -> bool:
    """Whether instances of ``handler`` collect events: an ``events`` attribute or property
    on the class, an ``events`` annotation, or an ``__init__`` that names ``events``
    (``self.events = []``) other than to store a parameter of that name."""
    if hasattr(handler, "events"):
        return True
    for cls in handler.__mro__:
        if "events" in inspect.get_annotations(cls):
            return True
        code = getattr(cls.__dict__.get("__init__"), "__code__", None)
        if code is None or "events" not in code.co_names:
            continue
        # ``self.events = events``, a parameter, is an injected dependency (a publisher)
        parameters = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        return "events" not in parameters
    return False


async def publish_collected(bus: MessageBus, handler: Any) -> None:
    """Publish the events ``handler`` collected, in order, and forget them: the list is
    cleared (or ``clear_events()`` called) first, so a second send in the scope never
    publishes them again."""
    events = getattr(handler, "events", None)
    if not events or not isinstance(events, list):
        return  # not a list of events: an attribute of the same name for something else
    pending = list(events)
    _drop_collected(handler)
    for event in pending:
        await bus.publish(event)


def handle_call(
    bus: MessageBus, ref: HandlerRef, handler: Any, *args: Any
) -> Callable[[], Awaitable[Any]]:
    """The call of ``handler.handle(*args)``, publishing its collected events after it when
    ``ref`` collects them."""
    if ref.collects:
        return partial(_handle_then_publish, bus, handler, *args)
    return partial(handler.handle, *args)


def stream_of(
    bus: MessageBus, ref: HandlerRef, handler: Any, iterator: AsyncIterator[Any]
) -> AsyncIterator[Any]:
    """``iterator``, publishing the collected events after each item when ``ref`` collects
    them."""
    return _publishing(bus, handler, iterator) if ref.collects else iterator


async def _handle_then_publish(bus: MessageBus, handler: Any, *args: Any) -> Any:
    """``handler.handle(*args)``, then its collected events published; if ``handle`` raises,
    the events are dropped unpublished."""
    try:
        answer = await handler.handle(*args)
    except BaseException:
        _drop_collected(handler)
        raise
    await publish_collected(bus, handler)
    return answer


def _drop_collected(handler: Any) -> None:
    clear = getattr(handler, "clear_events", None)
    if clear is not None:
        clear()
        return
    events = getattr(handler, "events", None)
    if isinstance(events, list):
        events.clear()


async def _publishing(
    bus: MessageBus, handler: Any, iterator: AsyncIterator[Any]
) -> AsyncIterator[Any]:
    """The stream of ``iterator``, publishing the handler's collected events after each
    item (before the consumer gets it) and after the last."""
    try:
        async for item in iterator:
            await publish_collected(bus, handler)
            yield item
    except BaseException:
        _drop_collected(handler)
        raise
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
    await publish_collected(bus, handler)


async def run_pipeline(
    bus: MessageBus,
    behaviors: tuple[BehaviorRef, ...],
    message: object,
    terminal: Callable[[], Awaitable[Any]],
) -> Any:
    """Run ``terminal`` wrapped in ``behaviors``, the first outermost."""
    call = terminal
    for ref in reversed(behaviors):
        behavior = ref.instance if ref.instance is not None else await bus.resolve(ref)
        call = partial(behavior.handle, message, call)
    return await call()


class RequestPlan:
    """A request answered by one handler."""

    __slots__ = ("handler", "message_type", "pipeline", "simple", "tracked")

    def __init__(
        self,
        message_type: type,
        handler: HandlerRef,
        pipeline: tuple[BehaviorRef, ...],
        *,
        tracked: bool,
    ) -> None:
        self.message_type = message_type
        self.handler = handler
        self.pipeline = pipeline
        self.tracked = tracked
        """Whether a message of this type gets an envelope (see ``_tracking``)."""
        self.simple = not pipeline and not handler.collects
        """No behaviors, no collected events: a scope may cache the handler's bound
        ``handle`` for this type (when untracked)."""

    async def run(self, bus: MessageBus, request: object) -> Any:
        handler = await bus.resolve(self.handler)
        if not self.pipeline and not self.handler.collects:
            return await handler.handle(request)
        terminal = handle_call(bus, self.handler, handler, request)
        return await run_pipeline(bus, self.pipeline, request, terminal)


class ChainPlan:
    """A request tried by each link of a chain of responsibility in turn."""

    __slots__ = ("links", "message_type", "pipeline", "simple", "tracked")

    def __init__(
        self,
        message_type: type,
        links: tuple[HandlerRef, ...],
        pipeline: tuple[BehaviorRef, ...],
        *,
        tracked: bool,
    ) -> None:
        self.message_type = message_type
        self.links = links
        self.pipeline = pipeline
        self.tracked = tracked
        self.simple = False

    async def run(self, bus: MessageBus, request: object) -> Any:
        if not self.pipeline:
            return await self._link(bus, request, 0)
        return await run_pipeline(bus, self.pipeline, request, partial(self._link, bus, request, 0))

    async def _link(self, bus: MessageBus, request: object, index: int) -> Any:
        if index == len(self.links):
            raise ChainExhaustedError(self.message_type, [link.name for link in self.links])
        ref = self.links[index]
        handler = await bus.resolve(ref)
        call_next = partial(self._link, bus, request, index + 1)
        if not ref.behaviors and not ref.collects:
            return await handler.handle(request, call_next)
        terminal = handle_call(bus, ref, handler, request, call_next)
        return await run_pipeline(bus, ref.behaviors, request, terminal)


class StreamPlan:
    """A stream request answered by one stream handler."""

    __slots__ = ("handler", "message_type", "pipeline", "tracked")

    def __init__(
        self,
        message_type: type,
        handler: HandlerRef,
        pipeline: tuple[BehaviorRef, ...],
        *,
        tracked: bool,
    ) -> None:
        self.message_type = message_type
        self.handler = handler
        self.pipeline = pipeline
        self.tracked = tracked

    async def open(self, bus: MessageBus, request: object) -> AsyncIterator[Any]:
        """Resolve the handler and return its iterator, wrapped by the behaviors."""
        handler = await bus.resolve(self.handler)
        if not self.pipeline:
            iterator: AsyncIterator[Any] = handler.handle(request)
            return stream_of(bus, self.handler, handler, iterator)

        async def start() -> AsyncIterator[Any]:
            started: AsyncIterator[Any] = handler.handle(request)
            return stream_of(bus, self.handler, handler, started)

        wrapped: AsyncIterator[Any] = await run_pipeline(bus, self.pipeline, request, start)
        return wrapped


class EventPlan:
    """An event's handlers (its type's, then its bases', in MRO order), each with behaviors."""

    __slots__ = ("delivery", "handlers", "message_type", "pipelines", "simple", "tracked")

    def __init__(
        self,
        message_type: type,
        handlers: tuple[HandlerRef, ...],
        pipelines: tuple[tuple[BehaviorRef, ...], ...],
        delivery: EventDelivery,
        *,
        tracked: bool,
    ) -> None:
        self.message_type = message_type
        self.handlers = handlers
        self.pipelines = pipelines
        self.delivery = delivery
        self.tracked = tracked
        self.simple = not any(pipelines) and (not delivery.concurrent or len(handlers) < 2)
        """Sequential (or one handler) without behaviors: keys can be resolved and awaited
        in a plain loop."""

    async def run(self, bus: MessageBus, event: object) -> None:
        if self.delivery.concurrent and len(self.handlers) > 1:
            await self._run_concurrently(bus, event)
            return
        for ref, pipeline in zip(self.handlers, self.pipelines, strict=True):
            handler = await bus.resolve(ref)
            if pipeline:
                await run_pipeline(bus, pipeline, event, partial(handler.handle, event))
            else:
                await handler.handle(event)

    async def _run_concurrently(self, bus: MessageBus, event: object) -> None:
        # Resolve first, one by one: a request scope has no lock, and concurrent first-time
        # resolution of a shared scoped dependency could build it twice.
        handlers = [await bus.resolve(ref) for ref in self.handlers]
        limit = self.delivery.limit
        semaphore = asyncio.Semaphore(limit) if limit is not None else None

        async def deliver(handler: Any, pipeline: tuple[BehaviorRef, ...]) -> None:
            if semaphore is not None:
                async with semaphore:
                    await _deliver(bus, handler, pipeline, event)
            else:
                await _deliver(bus, handler, pipeline, event)

        results = await asyncio.gather(
            *(deliver(h, p) for h, p in zip(handlers, self.pipelines, strict=True)),
            return_exceptions=True,
        )
        errors: list[Exception] = []
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancellation and interpreter exits are not gathered
                errors.append(result)
        if errors:
            count = len(self.handlers)
            msg = f"{len(errors)} of {count} handlers of `{type_name(self.message_type)}` failed"
            raise ExceptionGroup(msg, errors)


async def _deliver(
    bus: MessageBus, handler: Any, pipeline: tuple[BehaviorRef, ...], event: object
) -> None:
    if pipeline:
        await run_pipeline(bus, pipeline, event, partial(handler.handle, event))
    else:
        await handler.handle(event)
