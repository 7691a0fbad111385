"""Traced dispatch plans: what ``App.build`` puts in the dispatcher when telemetry is on.

Each is a subclass of the plain plan with the same fields; it is never ``simple``, so every
send and publish goes through its ``run`` (the fast paths that skip ``run`` are for the plain
plans of an app without telemetry, which keeps them unchanged). ``run`` opens a span for the
dispatch (``send PlaceOrder``, ``publish OrderPlaced``, ``stream ListOrders``), records each
behavior as an event on it when the behavior starts, and runs each handler in a span of its
own (``handle PlaceOrder``, attribute ``dockyard.handler``) while measuring its duration.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from dockyard._type_name import type_name
from dockyard.exceptions import ChainExhaustedError
from dockyard.messaging._envelope import CURRENT
from dockyard.messaging._plan import (
    BehaviorRef,
    ChainPlan,
    EventPlan,
    RequestPlan,
    StreamPlan,
    handle_call,
    stream_of,
)
from dockyard.telemetry._instruments import (
    BEHAVIOR,
    CONVERSATION_ID,
    DESTINATION,
    ERROR_TYPE,
    IN_PROCESS,
    MESSAGE_ID,
    OPERATION_NAME,
    SYSTEM,
    HandlerTrace,
    Instruments,
)

if TYPE_CHECKING:
    from dockyard.messaging._bus import MessageBus

__all__ = ["PlanTracer"]

_DONE: Any = object()


class PlanTracer:
    """Turns plain plans into traced ones (``Dispatcher.instrument`` calls it)."""

    __slots__ = ("_instruments",)

    def __init__(self, instruments: Instruments) -> None:
        self._instruments = instruments

    def request(self, plan: RequestPlan | ChainPlan) -> RequestPlan | ChainPlan:
        if isinstance(plan, ChainPlan):
            return TracedChainPlan(plan, self._instruments)
        return TracedRequestPlan(plan, self._instruments)

    def stream(self, plan: StreamPlan) -> StreamPlan:
        return TracedStreamPlan(plan, self._instruments)

    def event(self, plan: EventPlan) -> EventPlan:
        if not plan.handlers:
            return plan  # a publish nobody handles costs nothing, traced or not
        return TracedEventPlan(plan, self._instruments)


def _dispatch_attributes(operation: str, message_type: type) -> dict[str, Any]:
    name = type_name(message_type)
    return {SYSTEM: IN_PROCESS, OPERATION_NAME: operation, DESTINATION: name}


class _Dispatch:
    """The span around one dispatch, shared by the traced plans."""

    __slots__ = ("attributes", "instruments", "name", "tracked")

    def __init__(
        self, instruments: Instruments, operation: str, message_type: type, *, tracked: bool
    ) -> None:
        self.instruments = instruments
        self.name = f"{operation} {type_name(message_type)}"
        self.attributes = _dispatch_attributes(operation, message_type)
        self.tracked = tracked

    async def run(self, message: object, call: Callable[[Any], Awaitable[Any]]) -> Any:
        """Await ``call(span)`` inside the dispatch span (``span`` is ``None`` without
        tracing: metrics only)."""
        instruments = self.instruments
        if instruments.tracer is None:
            return await call(None)
        span, token = instruments.start(self.name, self.attributes)
        if self.tracked:
            _identify(span, message)
        try:
            result = await call(span)
        except BaseException as exc:
            instruments.finish(span, token, exc if isinstance(exc, Exception) else None)
            raise
        instruments.finish(span, token)
        return result


def _identify(span: Any, message: object) -> None:
    """Message and conversation ids, when the message has an envelope (a tracked type)."""
    envelope = CURRENT.get()
    if envelope is not None and envelope.message is message:
        span.set_attribute(MESSAGE_ID, envelope.message_id)
        span.set_attribute(CONVERSATION_ID, envelope.correlation_id)


def _entered(
    span: Any, name: str, handle: Callable[[Any, Any], Any], message: object, call_next: Any
) -> Any:
    span.add_event(f"behavior {name}", {BEHAVIOR: name})
    return handle(message, call_next)


async def _pipeline(
    bus: MessageBus,
    span: Any,
    behaviors: tuple[BehaviorRef, ...],
    message: object,
    terminal: Callable[[], Awaitable[Any]],
) -> Any:
    """``run_pipeline``, with an event on ``span`` as each behavior starts."""
    call = terminal
    for ref in reversed(behaviors):
        behavior = ref.instance if ref.instance is not None else await bus.resolve(ref)
        if span is None:
            call = partial(behavior.handle, message, call)
        else:
            call = partial(_entered, span, ref.name, behavior.handle, message, call)
    return await call()


class TracedRequestPlan(RequestPlan):
    __slots__ = ("_dispatch", "_trace")

    def __init__(self, plan: RequestPlan, instruments: Instruments) -> None:
        super().__init__(plan.message_type, plan.handler, plan.pipeline, tracked=plan.tracked)
        self.simple = False
        self._dispatch = _Dispatch(instruments, "send", plan.message_type, tracked=plan.tracked)
        self._trace = HandlerTrace(plan.message_type, plan.handler.handler)

    async def run(self, bus: MessageBus, request: object) -> Any:
        return await self._dispatch.run(request, partial(self._run, bus, request))

    async def _run(self, bus: MessageBus, request: object, span: Any) -> Any:
        handler = await bus.resolve(self.handler)
        run_handler = self._dispatch.instruments.run_handler
        terminal = partial(
            run_handler, self._trace, handle_call(bus, self.handler, handler, request)
        )
        if not self.pipeline:
            return await terminal()
        return await _pipeline(bus, span, self.pipeline, request, terminal)


class TracedChainPlan(ChainPlan):
    __slots__ = ("_dispatch", "_traces")

    def __init__(self, plan: ChainPlan, instruments: Instruments) -> None:
        super().__init__(plan.message_type, plan.links, plan.pipeline, tracked=plan.tracked)
        self._dispatch = _Dispatch(instruments, "send", plan.message_type, tracked=plan.tracked)
        self._traces = tuple(HandlerTrace(plan.message_type, link.handler) for link in plan.links)

    async def run(self, bus: MessageBus, request: object) -> Any:
        return await self._dispatch.run(request, partial(self._run, bus, request))

    async def _run(self, bus: MessageBus, request: object, span: Any) -> Any:
        link = partial(self._traced_link, bus, request, 0, span)
        if not self.pipeline:
            return await link()
        return await _pipeline(bus, span, self.pipeline, request, link)

    async def _traced_link(self, bus: MessageBus, request: object, index: int, span: Any) -> Any:
        if index == len(self.links):
            raise ChainExhaustedError(self.message_type, [link.name for link in self.links])
        ref = self.links[index]
        handler = await bus.resolve(ref)
        call_next = partial(self._traced_link, bus, request, index + 1, span)
        run_handler = self._dispatch.instruments.run_handler
        terminal = partial(
            run_handler, self._traces[index], handle_call(bus, ref, handler, request, call_next)
        )
        if not ref.behaviors:
            return await terminal()
        return await _pipeline(bus, span, ref.behaviors, request, terminal)


class TracedEventPlan(EventPlan):
    __slots__ = ("_dispatch", "_traces")

    def __init__(self, plan: EventPlan, instruments: Instruments) -> None:
        super().__init__(
            plan.message_type, plan.handlers, plan.pipelines, plan.delivery, tracked=plan.tracked
        )
        self.simple = False
        self._dispatch = _Dispatch(instruments, "publish", plan.message_type, tracked=plan.tracked)
        self._traces = tuple(HandlerTrace(plan.message_type, ref.handler) for ref in plan.handlers)

    async def run(self, bus: MessageBus, event: object) -> None:
        await self._dispatch.run(event, partial(self._run, bus, event))

    async def _run(self, bus: MessageBus, event: object, span: Any) -> None:
        if self.delivery.concurrent and len(self.handlers) > 1:
            await self._concurrently(bus, event, span)
            return
        run_handler = self._dispatch.instruments.run_handler
        for ref, pipeline, trace in zip(self.handlers, self.pipelines, self._traces, strict=True):
            handler = await bus.resolve(ref)
            terminal = partial(run_handler, trace, partial(handler.handle, event))
            if pipeline:
                await _pipeline(bus, span, pipeline, event, terminal)
            else:
                await terminal()

    async def _concurrently(self, bus: MessageBus, event: object, span: Any) -> None:
        # As EventPlan._run_concurrently: resolve one by one, then run at once.
        handlers = [await bus.resolve(ref) for ref in self.handlers]
        limit = self.delivery.limit
        semaphore = asyncio.Semaphore(limit) if limit is not None else None
        run_handler = self._dispatch.instruments.run_handler

        async def deliver(handler: Any, pipeline: tuple[BehaviorRef, ...], trace: Any) -> None:
            terminal = partial(run_handler, trace, partial(handler.handle, event))
            call = (
                partial(_pipeline, bus, span, pipeline, event, terminal) if pipeline else terminal
            )
            if semaphore is not None:
                async with semaphore:
                    await call()
            else:
                await call()

        results = await asyncio.gather(
            *(
                deliver(h, p, t)
                for h, p, t in zip(handlers, self.pipelines, self._traces, strict=True)
            ),
            return_exceptions=True,
        )
        errors: list[Exception] = []
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                errors.append(result)
        if errors:
            count = len(self.handlers)
            msg = f"{len(errors)} of {count} handlers of `{type_name(self.message_type)}` failed"
            raise ExceptionGroup(msg, errors)


class TracedStreamPlan(StreamPlan):
    """The ``stream`` span lasts until the stream ends; the handler's span is its child and
    is made current around each step of the iterator only, never across a ``yield``."""

    __slots__ = ("_dispatch", "_trace")

    def __init__(self, plan: StreamPlan, instruments: Instruments) -> None:
        super().__init__(plan.message_type, plan.handler, plan.pipeline, tracked=plan.tracked)
        self._dispatch = _Dispatch(instruments, "stream", plan.message_type, tracked=plan.tracked)
        self._trace = HandlerTrace(plan.message_type, plan.handler.handler)

    async def open(self, bus: MessageBus, request: object) -> AsyncIterator[Any]:
        instruments = self._dispatch.instruments
        span = token = None
        if instruments.tracer is not None:
            span, token = instruments.start(self._dispatch.name, self._dispatch.attributes)
            if self.tracked:
                _identify(span, request)
        try:
            handler = await bus.resolve(self.handler)
            if self.pipeline:

                async def start() -> AsyncIterator[Any]:
                    started: AsyncIterator[Any] = handler.handle(request)
                    return stream_of(bus, self.handler, handler, started)

                iterator: AsyncIterator[Any] = await _pipeline(
                    bus, span, self.pipeline, request, start
                )
            else:
                iterator = stream_of(bus, self.handler, handler, handler.handle(request))
        except BaseException as exc:
            if span is not None:
                instruments.finish(span, token, exc if isinstance(exc, Exception) else None)
            raise
        if token is not None:
            instruments.detach(token)  # the span stays open until the end
        return _iterate(instruments, self._trace, span, iterator)


async def _iterate(
    instruments: Instruments, trace: HandlerTrace, span: Any, iterator: AsyncIterator[Any]
) -> AsyncIterator[Any]:
    handler_span = None
    context: Any = None
    if span is not None:
        parent = instruments.set_span(span)
        handler_span = instruments.tracer.start_span(
            trace.span_name, context=parent, attributes=trace.attributes
        )
        context = instruments.set_span(handler_span)
    started = time.perf_counter()
    items = 0
    error: BaseException | None = None
    try:
        while True:
            token = instruments.attach(context) if context is not None else None
            try:
                item = await anext(iterator, _DONE)
            finally:
                if token is not None:
                    instruments.detach(token)
            if item is _DONE:
                return
            items += 1
            yield item
    except Exception as exc:
        error = exc
        raise
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
        _ended(instruments, trace, span, handler_span, started, items, error)


def _ended(
    instruments: Instruments,
    trace: HandlerTrace,
    span: Any,
    handler_span: Any,
    started: float,
    items: int,
    error: BaseException | None,
) -> None:
    duration = instruments.handler_duration
    if duration is not None:
        attributes: Mapping[str, Any] = trace.metric_attributes
        if error is not None:
            attributes = {**attributes, ERROR_TYPE: type_name(type(error))}
        duration.record(time.perf_counter() - started, attributes)
    for current in (handler_span, span):
        if current is None:
            continue
        current.set_attribute("dockyard.stream.items", items)
        if error is not None:
            instruments.fail(current, error)
        current.end()
