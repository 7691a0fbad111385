"""The dispatcher (app-wide plans) and the message bus (one per scope).

Hot paths, for a message type whose context is not tracked (one whose handlers cannot reach
``MessageContext``, the outbox or the bus; see ``_tracking``):

- ``bus.send`` in an open scope: one dict lookup for the bound ``handle`` the scope already
  resolved, then the call.
- ``app.send``: one dict lookup for the plan, one resolution by a precomputed key, the call.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from dishka import AsyncContainer

from dockyard._type_name import type_name
from dockyard.exceptions import HandlerNotFoundError
from dockyard.messaging._declared import declared_handlers_of
from dockyard.messaging._dishka import Getter, getter
from dockyard.messaging._envelope import CURRENT, Envelope
from dockyard.messaging._interfaces import IMessageBus, IPublisher, ISender
from dockyard.messaging._introspect import HandlerKind
from dockyard.messaging._messages import Request, StreamRequest
from dockyard.messaging._plan import (
    BehaviorRef,
    ChainPlan,
    EventPlan,
    HandlerRef,
    RequestPlan,
    StreamPlan,
)

if TYPE_CHECKING:  # annotations only: telemetry is optional and imported by App.build
    from dockyard.telemetry._plans import PlanTracer

__all__ = ["Dispatcher", "MessageBus", "resolve_in"]

_REQUEST_KINDS = frozenset({HandlerKind.REQUEST, HandlerKind.CHAIN})
_STREAM_KINDS = frozenset({HandlerKind.STREAM})

R = TypeVar("R")
T = TypeVar("T")

_DONE: Any = object()


class Dispatcher:
    """Every dispatch plan of one app, built by ``compile_messaging``."""

    __slots__ = (
        "_event_plan_factory",
        "_fields",
        "_generic_events",
        "_inherited_plan_factory",
        "_parameter_fields",
        "events",
        "out_of_band",
        "requests",
        "streams",
        "tracking",
    )

    def __init__(
        self,
        *,
        requests: dict[type, RequestPlan | ChainPlan],
        streams: dict[type, StreamPlan],
        events: dict[type, EventPlan],
        event_plan_factory: Callable[[type, Mapping[str, type] | None], EventPlan],
        inherited_plan_factory: Callable[[type], RequestPlan | ChainPlan | StreamPlan | None]
        | None = None,
        parameter_fields: Callable[[type], tuple[str, ...]] | None = None,
        tracking: bool,
        out_of_band: dict[str, EventPlan] | None = None,
    ) -> None:
        self.requests = requests
        self.streams = streams
        self.events = events
        self._event_plan_factory = event_plan_factory
        self._inherited_plan_factory = inherited_plan_factory
        """For a request class defined after the build whose base is handled: compiles its
        plan on its first send (then kept, like the subclasses known at build time)."""
        self._parameter_fields = parameter_fields
        """``None`` unless some event handler names a parametrized type (``Notice[X]``)."""
        self._fields: dict[type, tuple[str, ...]] = {}
        self._generic_events: dict[tuple[Any, ...], EventPlan] = {}
        self.out_of_band = out_of_band or {}
        """The plans of handlers run out of band, by ``handler_name``: not part of their
        event's plan, run by the consumer that receives the event (``run_handler``)."""
        self.tracking = tracking
        """Whether any message may be tracked: something in the app reads the envelope, or
        the settings force it. Each plan says whether its own type is (``plan.tracked``)."""

    def instrument(self, tracer: PlanTracer) -> None:
        """Swap every plan for its traced twin, and trace the plans compiled later (event
        subclasses): called once by ``App.build`` when telemetry is on, never otherwise."""
        self.requests = {tp: tracer.request(plan) for tp, plan in self.requests.items()}
        self.streams = {tp: tracer.stream(plan) for tp, plan in self.streams.items()}
        self.events = {tp: tracer.event(plan) for tp, plan in self.events.items()}
        self.out_of_band = {name: tracer.event(plan) for name, plan in self.out_of_band.items()}
        compile_event = self._event_plan_factory

        def traced(message_type: type, actual: Mapping[str, type] | None) -> EventPlan:
            return tracer.event(compile_event(message_type, actual))

        self._event_plan_factory = traced
        inherit = self._inherited_plan_factory
        if inherit is not None:

            def traced_inherited(
                message_type: type,
            ) -> RequestPlan | ChainPlan | StreamPlan | None:
                plan = inherit(message_type)
                if isinstance(plan, StreamPlan):
                    return tracer.stream(plan)
                return None if plan is None else tracer.request(plan)

            self._inherited_plan_factory = traced_inherited

    # -- plan lookup ---------------------------------------------------------------------

    def request_plan(self, message_type: type) -> RequestPlan | ChainPlan:
        plan = self.requests.get(message_type)
        if plan is None:
            inherited = self._inherit(message_type)
            if isinstance(inherited, StreamPlan) or inherited is None:
                raise self._not_found(message_type, "send")
            plan = self.requests[message_type] = inherited
        return plan

    def stream_plan(self, message_type: type) -> StreamPlan:
        plan = self.streams.get(message_type)
        if plan is None:
            inherited = self._inherit(message_type)
            if not isinstance(inherited, StreamPlan):
                raise self._not_found(message_type, "stream")
            plan = self.streams[message_type] = inherited
        return plan

    def _inherit(self, message_type: type) -> RequestPlan | ChainPlan | StreamPlan | None:
        factory = self._inherited_plan_factory
        return None if factory is None else factory(message_type)

    def event_plan(self, message_type: type) -> EventPlan:
        plan = self.events.get(message_type)
        if plan is None:  # a type first seen now (e.g. a subclass): compile once, keep it
            plan = self.events[message_type] = self._event_plan_factory(message_type, None)
        return plan

    def event_plan_of(self, event: object) -> EventPlan:
        """The plan for this event: by its class, and where handlers name parametrized types
        (``Notice[UserLeft]``), by the types its parameter fields hold."""
        cls = event.__class__
        find = self._parameter_fields
        if find is None:
            return self.event_plan(cls)
        fields = self._fields.get(cls)
        if fields is None:
            fields = self._fields[cls] = find(cls)
        if not fields:
            return self.event_plan(cls)
        actual = tuple(type(getattr(event, name, None)) for name in fields)
        key = (cls, *actual)
        plan = self._generic_events.get(key)
        if plan is None:
            by_field = dict(zip(fields, actual, strict=True))
            plan = self._generic_events[key] = self._event_plan_factory(cls, by_field)
        return plan

    def _not_found(self, message_type: type, operation: str) -> HandlerNotFoundError:
        handled_by = None
        if operation == "send" and message_type in self.streams:
            handled_by = "a stream handler"
        elif operation == "stream" and message_type in self.requests:
            handled_by = "a request handler"
        registered = [type_name(t) for t in (*self.requests, *self.streams)]
        elsewhere: list[str] = []
        if handled_by is None:
            kinds = _STREAM_KINDS if operation == "stream" else _REQUEST_KINDS
            elsewhere = declared_handlers_of(message_type, kinds)
        return HandlerNotFoundError(
            message_type,
            operation,
            registered,
            handled_by=handled_by,
            declared_elsewhere=elsewhere,
        )

    # -- entry points for a scope that has no bus yet (App.send / App.publish) -----------

    async def send_in(
        self,
        scope: AsyncContainer,
        request: Any,
        message_id: str | None,
        correlation_id: str | None,
        causation_id: str | None,
        headers: Mapping[str, str] | None,
    ) -> Any:
        plan = self.requests.get(request.__class__)
        if plan is not None and plan.simple:
            assert isinstance(plan, RequestPlan)
            handler = await getter(scope)(plan.handler.key)
            if not plan.tracked:
                return await handler.handle(request)
            envelope = Envelope(
                request, CURRENT.get(), message_id, correlation_id, causation_id, headers
            )
            token = CURRENT.set(envelope)
            try:
                return await handler.handle(request)
            finally:
                CURRENT.reset(token)
        bus = MessageBus(self, scope)
        return await bus.send(
            request,
            message_id=message_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            headers=headers,
        )

    async def publish_in(
        self,
        scope: AsyncContainer,
        event: object,
        message_id: str | None,
        correlation_id: str | None,
        causation_id: str | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        plan = self.event_plan_of(event)
        if plan.simple and not plan.tracked:
            get = getter(scope)
            for ref in plan.handlers:
                handler = await get(ref.key)
                await handler.handle(event)
            return
        await MessageBus(self, scope).publish(
            event,
            message_id=message_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            headers=headers,
        )


class MessageBus(IMessageBus):
    """``ISender``, ``IPublisher`` and ``IMessageBus`` for one scope.

    Handlers and behavior classes are scoped, so the bus keeps those it resolved; a second
    send of a plain request type in the same scope goes straight to the handler.
    """

    __slots__ = ("_dispatcher", "_get", "_handles", "_instances")

    def __init__(self, dispatcher: Dispatcher, container: AsyncContainer) -> None:
        self._dispatcher = dispatcher
        self._get: Getter = getter(container)
        self._instances: dict[HandlerRef | BehaviorRef, Any] = {}
        self._handles: dict[type, Callable[[Any], Coroutine[Any, Any, Any]]] = {}

    async def resolve(self, ref: HandlerRef | BehaviorRef) -> Any:
        """The scope's instance of a handler or behavior class."""
        instance = self._instances.get(ref)
        if instance is None:
            instance = self._instances[ref] = await self._get(ref.key)
        return instance

    def send(
        self,
        request: Request[R],
        /,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Coroutine[Any, Any, R]:
        # A plain function returning the handler's coroutine: a send in an open scope costs
        # a dict lookup, not an extra coroutine frame.
        handle = self._handles.get(request.__class__)
        if handle is not None:  # only filled for untracked types: nobody can read metadata
            coroutine: Coroutine[Any, Any, R] = handle(request)
            return coroutine
        return self._send(request, message_id, correlation_id, causation_id, headers)

    async def _send(
        self,
        request: Request[R],
        message_id: str | None,
        correlation_id: str | None,
        causation_id: str | None,
        headers: Mapping[str, str] | None,
    ) -> R:
        dispatcher = self._dispatcher
        plan = dispatcher.request_plan(request.__class__)
        if plan.tracked:
            envelope = Envelope(
                request, CURRENT.get(), message_id, correlation_id, causation_id, headers
            )
            token = CURRENT.set(envelope)
            try:
                tracked: R = await plan.run(self, request)
            finally:
                CURRENT.reset(token)
            return tracked
        if plan.simple:
            assert isinstance(plan, RequestPlan)
            ref = plan.handler  # resolve(), inline: one coroutine less on a scope's first send
            handler = self._instances.get(ref)
            if handler is None:
                handler = self._instances[ref] = await self._get(ref.key)
            handle = self._handles[request.__class__] = handler.handle
            answer: R = await handle(request)
            return answer
        piped: R = await plan.run(self, request)
        return piped

    async def publish(
        self,
        event: object,
        /,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        dispatcher = self._dispatcher
        plan = dispatcher.event_plan_of(event)
        if not plan.handlers:
            return
        if plan.tracked:
            envelope = Envelope(
                event, CURRENT.get(), message_id, correlation_id, causation_id, headers
            )
            token = CURRENT.set(envelope)
            try:
                await plan.run(self, event)
            finally:
                CURRENT.reset(token)
            return
        await plan.run(self, event)

    async def run_handler(
        self,
        handler: str,
        event: object,
        /,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Run only the handler named ``handler`` (``handler_name``), one that runs out of
        band, with its behaviors: what a consumer does with a message written by its
        stand-in.

        Raises:
            HandlerNotFoundError: This app runs no handler of that name out of band.
        """
        plan = self._dispatcher.out_of_band.get(handler)
        if plan is None:
            raise HandlerNotFoundError(
                type(event), "run_handler", sorted(self._dispatcher.out_of_band)
            )
        envelope = Envelope(event, CURRENT.get(), message_id, correlation_id, causation_id, headers)
        token = CURRENT.set(envelope)
        try:
            await plan.run(self, event)
        finally:
            CURRENT.reset(token)

    async def stream(
        self,
        request: StreamRequest[T],
        /,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[T, None]:
        dispatcher = self._dispatcher
        plan = dispatcher.stream_plan(request.__class__)
        if not plan.tracked:
            iterator = await plan.open(self, request)
            try:
                async for item in iterator:
                    yield item
            finally:
                await _close(iterator)
            return
        envelope = Envelope(
            request, CURRENT.get(), message_id, correlation_id, causation_id, headers
        )
        # Set the envelope around each step, never across a `yield`: the consumer may resume
        # this generator from another task or context.
        token = CURRENT.set(envelope)
        try:
            iterator = await plan.open(self, request)
        finally:
            CURRENT.reset(token)
        try:
            while True:
                token = CURRENT.set(envelope)
                try:
                    item = await anext(iterator, _DONE)
                finally:
                    CURRENT.reset(token)
                if item is _DONE:
                    return
                yield item
        finally:
            await _close(iterator)


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


_BUS_PORTS = frozenset({ISender, IPublisher, IMessageBus})
_OWN_BUSES_AT_MOST = 16
_own_buses: dict[tuple[AsyncContainer, Any], Dispatcher] = {}
"""Per (app container, port): the dispatcher of the bus the app's own providers make there."""


async def resolve_in(scope: AsyncContainer, dependency: Any) -> Any:
    """``dependency`` from ``scope``, as ``scope.get(dependency)`` gives it, for an entry point
    (a web request's injections): ``ISender``, ``IPublisher`` and ``IMessageBus`` quicker.

    Dishka builds the scope's bus from the app's ``Dispatcher``, which it fetches from the app
    container under that container's lock (~2 µs of a web request). Once the scope has built
    one of dockyard's own buses for a port (no override of it, or of the bus, in that app
    container), later scopes of the same app container get a ``MessageBus`` built here from
    the same dispatcher and scope: what the provider would return. A port overridden (a fake
    sender in tests) is not a ``MessageBus``, and goes on being resolved by Dishka.
    """
    if dependency not in _BUS_PORTS:
        return await scope.get(dependency)
    root = scope
    while root.parent_container is not None:  # app.scope() passes through a session scope
        root = root.parent_container
    dispatcher = _own_buses.get((root, dependency))
    if dispatcher is not None:
        return MessageBus(dispatcher, scope)
    bus = await scope.get(dependency)
    if type(bus) is MessageBus and root is not scope:
        if len(_own_buses) >= _OWN_BUSES_AT_MOST:  # old app containers (overrides, restarts)
            _own_buses.clear()
        _own_buses[(root, dependency)] = bus._dispatcher  # noqa: SLF001 - our own bus
    return bus
