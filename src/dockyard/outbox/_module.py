"""``OutboxModule``: routes, the outbox, the inbox, dead letters and the relay of an app."""

from __future__ import annotations

import logging
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from dockyard._errors.modules import UnknownRelayTransportError
from dockyard._type_name import type_name
from dockyard.di import object_, scoped, singleton
from dockyard.exceptions import InvalidRouteError, MissingOutboxBackendError
from dockyard.modules import (
    BackgroundService,
    ChecksGraph,
    Defaults,
    DynamicModule,
    ModuleLike,
    OnWorkerExit,
    ProvidesBackgroundServices,
    module,
)
from dockyard.modules._extensions import ChecksApp
from dockyard.outbox._backend import OutboxBackend
from dockyard.outbox._dead_letters import DeadLetters
from dockyard.outbox._out_of_band import check_delivery
from dockyard.outbox._outbox import Outbox
from dockyard.outbox._relay import OutboxRelay
from dockyard.outbox._routing import route_of
from dockyard.outbox._settings import OutboxConfig, RelaySettings
from dockyard.outbox._store import Inbox, OutboxStore
from dockyard.outbox._transports import NamedTransport, Transports, relay_name, route_problems
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.serialization import Serializer
from dockyard.transport._port import Transport, in_process

if typing.TYPE_CHECKING:  # hook annotations only; nothing here is resolved by the container
    import asyncio

    from dockyard._errors.modules import ModuleProblem
    from dockyard.app import App
    from dockyard.messaging import MessageRegistry
    from dockyard.modules import ModuleGraph

__all__ = ["OutboxModule"]

logger = logging.getLogger("dockyard.outbox")


class _Deferred:
    """A background service whose dependencies are resolved when the worker starts it."""

    __slots__ = ("_build", "_name")

    reports_health = True  # the relay says when it works (worker supervision)

    def __init__(self, name: str, build: Callable[[], Awaitable[BackgroundService]]) -> None:
        self._name = name
        self._build = build

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"<{self._name}>"

    async def run(self, stop: asyncio.Event) -> None:
        service = await self._build()
        await service.run(stop)


class OutboxExtension(ProvidesBackgroundServices, OnWorkerExit, ChecksApp, ChecksGraph):
    """Gives the worker the relay (one loop per transport); closes broker transports when the
    worker's process ends; checks that every route names one of the transports, and holds
    routes and out-of-band handlers against the app's consumers once handlers are compiled."""

    __slots__ = ("config", "run_relay", "transport", "transports")

    def __init__(self, config: OutboxConfig, transports: Transports, *, run_relay: bool) -> None:
        self.config = config
        self.transports = transports
        self.transport = transports.default.transport
        self.run_relay = run_relay

    def problems(self, graph: ModuleGraph) -> Sequence[ModuleProblem]:
        names = self.transports.names
        unknown: list[ModuleProblem] = [
            UnknownRelayTransportError(name, names)
            for name in self.config.relays
            if name not in names
        ]
        return [*unknown, *route_problems(graph, self.transports)]

    async def on_worker_exit(self, app: App) -> None:  # noqa: ARG002 -- the hook's signature
        # A broker transport's connection is the process's to close (left open, its client
        # takes the exit for an outage and says it reconnects). An in-process one may be
        # shared with another app in this process: it is left alone.
        for named in self.transports:
            if not in_process(named.transport):
                await named.transport.close()

    def check_app(self, graph: ModuleGraph, messages: MessageRegistry) -> list[ModuleProblem]:
        extensions = [e for node in graph.all_nodes for e in node.extensions]
        return check_delivery(messages, extensions)

    def background_services(self, app: App) -> Sequence[BackgroundService]:
        component = app.graph.get(OutboxModule).component
        config = self.config

        async def get(dependency: type[typing.Any]) -> typing.Any:
            return await app.container.get(dependency, component=component)

        async def relay() -> BackgroundService:
            store, transport = await get(OutboxStore), await get(Transport)
            settings = config.relay_of(self.transports.default.name)
            return OutboxRelay(store, transport, settings, instruments=app.instruments)

        def relay_of(named: NamedTransport) -> Callable[[], Awaitable[BackgroundService]]:
            async def build() -> BackgroundService:
                return OutboxRelay(
                    await get(OutboxStore),
                    named.publishing,
                    config.relay_of(named.name),
                    name=relay_name(named),
                    instruments=app.instruments,
                    destinations=named.destinations,
                    transport_name=named.name,
                )

            return build

        if not self.run_relay:
            return []
        if len(self.transports) == 1:
            return [_Deferred("outbox-relay", relay)]
        return [_Deferred(relay_name(named), relay_of(named)) for named in self.transports]


@module()
class OutboxModule:
    """Reliable delivery for an app: register it once, at the root.

    Exports (to every module: it is global) ``Outbox``, ``Inbox``, ``DeadLetters``,
    ``OutboxStore``, ``Transport`` and ``OutboxConfig``. Gives the worker (``dockyard worker``,
    ``app.run_worker()``) the relay. To receive messages, add
    ``dockyard.consumer.ConsumerModule.register(endpoints=[listen(...)])``.
    """

    @classmethod
    def register(
        cls,
        *,
        transport: Transport,
        transports: Mapping[str, Transport] | None = None,
        backend: OutboxBackend | None = None,
        routes: Iterable[type] = (),
        relay: RelaySettings | None = None,
        relays: Mapping[str, RelaySettings] | None = None,
        run_relay: bool = True,
        serializer: Serializer | None = None,
        compress_above: int | None = None,
        imports: Iterable[ModuleLike] = (),
    ) -> DynamicModule:
        """Configure the outbox.

        Args:
            transport: Where the relay publishes and ``ConsumerModule``'s consumers receive:
                the first transport, for unprefixed destinations (``"orders"``) and those
                prefixed with its scheme (``"rabbit://orders"``).
            transports: More transports, by name: ``{"nats": NatsTransport(...)}`` takes the
                destinations ``"nats://..."``. A name other than the transport's scheme
                (a second RabbitMQ: ``{"analytics": RabbitTransport(...)}``) is taken off
                the destination before the broker sees it. The relay runs one loop per
                transport (``docs/outbox.md``, "Several transports").
            backend: Where outbox and inbox rows are kept. By default
                ``dockyard.sql.SqlOutboxBackend()`` (in the unit of work) when the app has
                ``SqlModule``, in memory when the transport is ``InMemoryTransport``, and a
                build error otherwise; ``InMemoryOutboxBackend()`` only when named (with a
                broker transport, the build logs a warning: a crash loses what waits).
            routes: App-wide routes (``route(E).to(...)``); modules may list their own in
                ``handlers=[...]``.
            relay: Batching, polling, retries and retention of the relay: of every relay
                loop, except those given their own in ``relays``.
            relays: Settings of the relay loop of some transports, by transport name (the
                first transport's name is its scheme, ``"default"`` without one):
                ``{"nats": RelaySettings(batch_size=100)}``. A name the app has no transport
                by is an ``UnknownRelayTransportError`` when the app is built.
            run_relay: Give the worker a relay (turn off in an app that only consumes).
            serializer: Encodes outgoing and decodes incoming messages; a new one by default.
            compress_above: Compress (gzip) payloads over this many bytes, e.g. ``64 * 1024``;
                the ``content-encoding`` header tells consumers. ``None``: never.
            imports: Modules the backend needs.

        Raises:
            InvalidRouteError: Something in ``routes`` was not made by ``route(...).to(...)``.
            ValueError: A name in ``transports`` is not a URL scheme, or is the first
                transport's scheme.
            UnknownTransportError: (when the app is built) a route's destination is prefixed
                with a name no transport has; ``UnknownRelayTransportError``, one of its kind:
                ``relays`` names a transport the app does not have.
            MissingOutboxBackendError: (when the app is built) no backend given, a broker
                transport and no ``SqlModule``.
        """
        routes = tuple(routes)
        for handler in routes:
            if route_of(handler) is None:
                raise InvalidRouteError(
                    handler, "it is in `routes=[...]` but was not made by `route(...).to(...)`"
                )
        every = Transports(transport, transports)
        config = OutboxConfig(
            serializer or Serializer(),
            relay or RelaySettings(),
            compress_above=compress_above,
            relays=relays,
        )

        def registration(chosen: OutboxBackend) -> DynamicModule:
            if isinstance(chosen, InMemoryOutboxBackend) and not in_process(transport):
                logger.warning(
                    "the outbox keeps its messages in process memory (InMemoryOutboxBackend) "
                    "while publishing to %s: messages not yet relayed are lost if the process "
                    "stops. Use SqlModule (its outbox backend is the default then) for "
                    "delivery that survives a crash",
                    type_name(type(transport)),
                )
            return DynamicModule(
                cls,
                providers=[
                    *chosen.providers(),
                    object_(config, provides=OutboxConfig),
                    object_(transport, provides=Transport),
                    scoped(Outbox),
                    singleton(DeadLetters),
                ],
                imports=[*chosen.imports(), *imports],
                exports=[Outbox, Inbox, DeadLetters, OutboxStore, Transport, OutboxConfig],
                extensions=[OutboxExtension(config, every, run_relay=run_relay)],
                handlers=routes,
                is_global=True,
            )

        if backend is not None:
            return registration(backend)

        def resolve(defaults: Defaults) -> DynamicModule:
            offered = defaults(OutboxBackend)
            if offered is None and in_process(transport):
                offered = InMemoryOutboxBackend()  # nothing in this app outlives the process
            if offered is None:
                raise MissingOutboxBackendError(type_name(type(transport)))
            return registration(typing.cast("OutboxBackend", offered))

        return DynamicModule(cls, resolve=resolve)
