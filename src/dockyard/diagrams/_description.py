"""What a built app is made of, as plain data: what ``dockyard describe`` prints."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dockyard._type_name import type_name
from dockyard.app import App
from dockyard.consumer._module import endpoints_of
from dockyard.messaging._messages import Command, Query
from dockyard.messaging._registry import MessageInfo
from dockyard.modules._graph import ModuleNode
from dockyard.outbox._routing import route_of
from dockyard.sagas._definition import Saga, Step
from dockyard.sagas._module import sagas_of
from dockyard.sagas._step import is_compensable

__all__ = [
    "AppDescription",
    "EndpointDescription",
    "HandlerDescription",
    "MessageDescription",
    "ModuleDescription",
    "ProviderDescription",
    "RouteDescription",
    "SagaDescription",
    "SagaStepDescription",
    "describe",
]


@dataclass(frozen=True, slots=True)
class ProviderDescription:
    """One type a module provides (its handlers aside)."""

    provides: str
    kind: str
    """``factory``, ``object``, ``context`` or ``many``."""
    lifetime: str
    """``singleton``, ``scoped`` or ``transient``."""


@dataclass(frozen=True, slots=True)
class ModuleDescription:
    name: str
    is_global: bool
    imports: tuple[str, ...]
    exports: tuple[str, ...]
    """Every type importers see (re-exports included), sorted by name."""
    providers: tuple[ProviderDescription, ...]
    handlers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RouteDescription:
    """Where the outbox sends a message type (``route(E).to(destination)``)."""

    destination: str
    partition_key: bool
    """Whether messages are keyed (published and consumed in order per key)."""


@dataclass(frozen=True, slots=True)
class HandlerDescription:
    handler: str
    module: str
    behaviors: tuple[str, ...]
    """Outermost first: global, per message type, per handler."""
    route: RouteDescription | None = None
    """Set when the handler is an outbox route rather than code of the app."""


@dataclass(frozen=True, slots=True)
class MessageDescription:
    name: str
    path: str
    """``module.Class``: tells apart two message classes of one name."""
    kind: str
    """``command``, ``query`` or ``request`` (one handler); ``chain`` (handlers tried in
    order); ``stream``; ``event`` (any number of handlers, base classes' not repeated)."""
    handlers: tuple[HandlerDescription, ...]


@dataclass(frozen=True, slots=True)
class EndpointDescription:
    """What the app's consumers receive: a destination's messages, as a consumer group."""

    service: str
    destination: str
    group: str
    concurrency: int


@dataclass(frozen=True, slots=True)
class SagaStepDescription:
    name: str
    handler: str
    pivot: bool
    compensable: bool
    """Whether the handler has a ``compensate`` (what undoes the step)."""
    fallback: SagaStepDescription | None = None


@dataclass(frozen=True, slots=True)
class SagaDescription:
    name: str
    version: int
    state: str
    steps: tuple[SagaStepDescription, ...]
    compatible_with: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AppDescription:
    """A built app as data: modules, messages and their handlers, routes, endpoints,
    background services and sagas. Made by :func:`describe`; JSON-ready by :meth:`as_dict`."""

    root: str
    modules: tuple[ModuleDescription, ...]
    """In init order: imports before importers, the root last."""
    messages: tuple[MessageDescription, ...]
    """Requests first, each kind in registration order (as ``App.messages``)."""
    endpoints: tuple[EndpointDescription, ...]
    background_services: tuple[str, ...]
    """The names of what ``dockyard worker`` runs."""
    sagas: tuple[SagaDescription, ...]

    @property
    def routes(self) -> tuple[tuple[MessageDescription, RouteDescription], ...]:
        """Every message type the outbox sends somewhere, with where."""
        return tuple(
            (message, handler.route)
            for message in self.messages
            for handler in message.handlers
            if handler.route is not None
        )

    @property
    def handler_count(self) -> int:
        return sum(len(message.handlers) for message in self.messages)

    def as_dict(self) -> dict[str, Any]:
        """Everything above as lists, dicts and scalars (``json.dumps`` takes it as is)."""
        found: dict[str, Any] = _plain(dataclasses.asdict(self))
        found["routes"] = [
            {"message": message.name, **dataclasses.asdict(route)} for message, route in self.routes
        ]
        return found


def _plain(value: Any) -> Any:
    """``value`` with every tuple made a list, as JSON reads it back."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def describe(app: App) -> AppDescription:
    """What ``app`` is made of, read from the built app without starting it."""
    return AppDescription(
        root=app.graph.root.name,
        modules=tuple(_module(node) for node in app.modules),
        messages=tuple(_message(info) for info in app.messages),
        endpoints=tuple(
            EndpointDescription(e.name, e.destination, e.group, e.concurrency)
            for e in endpoints_of(app)
        ),
        background_services=tuple(service.name for service in app.background_services()),
        sagas=tuple(_saga(saga) for saga in sagas_of(app)),
    )


def _module(node: ModuleNode) -> ModuleDescription:
    handlers = set(node.handlers)
    return ModuleDescription(
        name=node.name,
        is_global=node.is_global,
        imports=tuple(imported.name for imported in node.imports),
        exports=tuple(sorted(type_name(exported) for exported in node.exported)),
        providers=tuple(
            ProviderDescription(type_name(provided), spec.kind.value, spec.lifetime.value)
            for provided, spec in node.provided.items()
            if provided not in handlers
        ),
        handlers=tuple(type_name(handler) for handler in node.handlers),
    )


def _message(info: MessageInfo) -> MessageDescription:
    tp = info.message_type
    kind = info.kind
    if kind == "request" and issubclass(tp, Command):
        kind = "command"
    elif kind == "request" and issubclass(tp, Query):
        kind = "query"
    handlers = []
    for handler in info.handlers:
        route = route_of(handler.handler)
        handlers.append(
            HandlerDescription(
                type_name(handler.handler),
                handler.module,
                handler.behaviors,
                None
                if route is None
                else RouteDescription(route.destination, route.partition_key is not None),
            )
        )
    return MessageDescription(
        type_name(tp), f"{tp.__module__}.{type_name(tp)}", kind, tuple(handlers)
    )


def _saga(saga: Saga[Any]) -> SagaDescription:
    return SagaDescription(
        name=saga.name,
        version=saga.version,
        state=type_name(saga.state),
        steps=tuple(_step(step) for step in saga.steps),
        compatible_with=tuple(saga.compatible_with),
    )


def _step(step: Step[Any]) -> SagaStepDescription:
    return SagaStepDescription(
        name=step.name,
        handler=type_name(step.handler),
        pivot=step.pivot,
        compensable=is_compensable(step.handler),
        fallback=None if step.fallback is None else _step(step.fallback),
    )
