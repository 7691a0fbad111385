"""``ConsumerModule``: run an app's endpoints (``listen(...)``) in its worker."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence

from dockyard.consumer._consumer import Consumer
from dockyard.consumer._endpoint import Endpoint
from dockyard.di import singleton
from dockyard.exceptions import EventTypeConflictError
from dockyard.messaging._out_of_band import handler_name
from dockyard.modules import (
    BackgroundService,
    ChecksGraph,
    DynamicModule,
    ModuleGraph,
    ProvidesBackgroundServices,
    module,
)
from dockyard.outbox import OutboxConfig, OutboxModule, OutboxStore, out_of_band_of, route_of
from dockyard.outbox._out_of_band import Listens
from dockyard.outbox._transports import destination_problems, transports_of
from dockyard.serialization import TypeRegistry
from dockyard.transport import Transport

if typing.TYPE_CHECKING:  # hook annotations only; nothing here is resolved by the container
    import asyncio

    from dockyard._errors.modules import ModuleProblem
    from dockyard.app import App

__all__ = ["ConsumerModule", "consumer_of", "endpoints_of", "type_name_conflicts"]


class OutboxParts:
    """What consumers use of the app's ``OutboxModule``.

    A provider of ``ConsumerModule``: an app without ``OutboxModule`` fails to build, with
    the types it misses, instead of failing when its worker starts.
    """

    __slots__ = ("config", "store", "transport")

    def __init__(self, config: OutboxConfig, transport: Transport, store: OutboxStore) -> None:
        self.config = config
        self.transport = transport
        self.store = store


def consumer_of(
    app: App, endpoint: Endpoint, transport: Transport, config: OutboxConfig, store: OutboxStore
) -> Consumer:
    """The ``Consumer`` of ``endpoint`` in the started ``app``, with the outbox's serializer
    (knowing every type a handler of the app accepts), dead letters and inbox: the worker's,
    and the FastStream integration's for its subscribers."""
    serializer = config.serializer
    out_of_band: set[str] = set()
    for info in app.messages.messages:  # every type some handler here accepts
        serializer.registry.register(info.message_type)
        for handler in info.handlers:
            target = out_of_band_of(handler.handler)
            if target is not None:
                out_of_band.add(handler_name(target.handler))
    return Consumer(
        endpoint,
        transport,
        open_scope=app.scope,
        serializer=serializer,
        store=store,
        component=app.graph.get(OutboxModule).component,  # the inbox's, in each scope
        instruments=app.instruments,
        out_of_band=frozenset(out_of_band),
    )


def endpoints_of(app: App) -> tuple[Endpoint, ...]:
    """The endpoints the app's ``ConsumerModule`` receives from (none without one)."""
    return tuple(
        endpoint
        for node in app.graph
        for extension in node.extensions
        if isinstance(extension, ConsumerExtension)
        for endpoint in extension.endpoints
    )


def type_name_conflicts(app: App) -> list[EventTypeConflictError]:
    """Message classes that would claim one stable type name in the outbox's serializer.

    The worker's consumers register every type the app handles when they start (see
    :func:`consumer_of`), and the outbox each routed type when it writes one; two classes
    under one name (``OrderPlaced`` in two modules, neither with ``@event_type``) fail only
    then. This finds them in the built app, without starting it (``dockyard check``).
    """
    try:
        spec = app.graph.get(OutboxModule).provided.get(OutboxConfig)
    except KeyError:  # no outbox: nothing is serialized by type name on the way out or in
        return []
    config = spec.source if spec is not None else None
    if not isinstance(config, OutboxConfig):
        return []
    scratch = TypeRegistry()  # the serializer's registrations so far, then the app's types
    for entry in config.serializer.registry:
        scratch.register(entry.cls, name=entry.name)
    consumes = bool(endpoints_of(app))
    conflicts: list[EventTypeConflictError] = []
    for info in app.messages:
        if consumes or any(route_of(h.handler) is not None for h in info.handlers):
            try:
                scratch.register(info.message_type)
            except EventTypeConflictError as conflict:
                conflicts.append(conflict)
    return conflicts


class _Deferred:
    """A consumer built when the worker starts it (the container is ready by then)."""

    __slots__ = ("_app", "_endpoint")

    reports_health = True  # the consumer says when it receives (worker supervision)

    def __init__(self, app: App, endpoint: Endpoint) -> None:
        self._app = app
        self._endpoint = endpoint

    @property
    def name(self) -> str:
        return self._endpoint.name

    def __repr__(self) -> str:
        return f"<{self.name}>"

    async def build(self) -> Consumer:
        app = self._app
        parts = await app.container.get(
            OutboxParts, component=app.graph.get(ConsumerModule).component
        )
        transports = transports_of(app.graph)  # the endpoint's, by its destination's prefix
        found = None if transports is None else transports.find(self._endpoint.destination)
        transport = parts.transport if found is None else found.publishing
        return consumer_of(app, self._endpoint, transport, parts.config, parts.store)

    async def run(self, stop: asyncio.Event) -> None:
        await (await self.build()).run(stop)


class ConsumerExtension(ProvidesBackgroundServices, Listens, ChecksGraph):
    """Gives the worker one consumer per endpoint; checks each names one of the transports."""

    __slots__ = ("endpoints",)

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = tuple(endpoints)

    @property
    def listens_to(self) -> dict[str, str]:
        return {endpoint.destination: endpoint.name for endpoint in self.endpoints}

    def problems(self, graph: ModuleGraph) -> Sequence[ModuleProblem]:
        transports = transports_of(graph)
        if transports is None:
            return []  # no outbox: OutboxParts reports what is missing
        where = [(f"Endpoint `{e.name}`", e.destination) for e in self.endpoints]
        return destination_problems(transports, where)

    def background_services(self, app: App) -> Sequence[BackgroundService]:
        return [_Deferred(app, endpoint) for endpoint in self.endpoints]


@module()
class ConsumerModule:
    """The endpoints an app receives from, with their concurrency and error policies.

    Needs ``OutboxModule`` in the app: consumers receive through its transport, record
    handled messages in its inbox and keep dead letters in its store, all in the storage's
    unit of work.

    Example:
        ```text
        ConsumerModule.register(endpoints=[listen("orders", group="billing")])
        ```
    """

    @classmethod
    def register(cls, *, endpoints: Iterable[Endpoint]) -> DynamicModule:
        """Run one consumer per endpoint (``listen(...)``) in the worker.

        Raises:
            ValueError: Two endpoints share a destination and a group.
        """
        endpoints = tuple(endpoints)
        names = [endpoint.name for endpoint in endpoints]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            msg = f"ConsumerModule.register() lists an endpoint twice: {', '.join(repeated)}"
            raise ValueError(msg)
        return DynamicModule(
            cls, providers=[singleton(OutboxParts)], extensions=[ConsumerExtension(endpoints)]
        )
