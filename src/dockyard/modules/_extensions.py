"""Lifecycle hooks. Each hook is an explicit type; an extension subclasses one or more of them.

An extension that subclasses none is a build error: nothing is silently ignored.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only; nothing here is resolved by the container
    from dockyard._errors.modules import ModuleProblem
    from dockyard.app import App
    from dockyard.messaging._registry import MessageRegistry
    from dockyard.modules._graph import ModuleGraph, ModuleNode

__all__ = [
    "HOOKS",
    "BackgroundService",
    "ChecksApp",
    "ChecksGraph",
    "Extension",
    "OffersDefaults",
    "OnAppInit",
    "OnAppShutdown",
    "OnModuleDestroy",
    "OnModuleInit",
    "OnWorkerExit",
    "ProvidesBackgroundServices",
]


class Extension:
    """Base of every hook type; subclass a hook below, not this."""

    __slots__ = ()


class OnModuleInit(Extension, abc.ABC):
    """Runs at start-up, module by module, dependencies first."""

    __slots__ = ()

    @abc.abstractmethod
    async def on_module_init(self, app: App, module: ModuleNode) -> None: ...


class OnAppInit(Extension, abc.ABC):
    """Runs once every module is initialised."""

    __slots__ = ()

    @abc.abstractmethod
    async def on_app_init(self, app: App) -> None: ...


class OnAppShutdown(Extension, abc.ABC):
    """Runs first at shutdown, before modules are destroyed."""

    __slots__ = ()

    @abc.abstractmethod
    async def on_app_shutdown(self, app: App) -> None: ...


class OnModuleDestroy(Extension, abc.ABC):
    """Runs at shutdown, module by module, in the reverse of the init order."""

    __slots__ = ()

    @abc.abstractmethod
    async def on_module_destroy(self, app: App, module: ModuleNode) -> None: ...


class OnWorkerExit(Extension, abc.ABC):
    """Runs when a worker that started the app (``dockyard worker``, ``app.run_worker()`` on
    an app not yet started) has stopped it: the process is about to end. Releases what the
    app was given and uses until the end, such as a broker transport's connection, which an
    app that is only stopped (and may start again) keeps."""

    __slots__ = ()

    @abc.abstractmethod
    async def on_worker_exit(self, app: App) -> None: ...


class BackgroundService(Protocol):
    """Long-running work a worker process runs: a relay, a projection runner, a consumer.

    ``run`` returns once ``stop`` is set, after finishing in-flight work and releasing any
    lease it holds. Several copies may run at once in different processes; each service
    coordinates itself (leases, ``SKIP LOCKED``) so that is safe.
    """

    @property
    def name(self) -> str: ...

    async def run(self, stop: asyncio.Event) -> None: ...


class ProvidesBackgroundServices(Extension, abc.ABC):
    """Contributes background services to the app's worker (``dockyard worker``)."""

    __slots__ = ()

    @abc.abstractmethod
    def background_services(self, app: App) -> Sequence[BackgroundService]: ...


class OffersDefaults(Extension, abc.ABC):
    """A module offers a default to registrations that left something unset.

    ``SqlModule`` offers the outbox its SQL backend: ``OutboxModule.register(...)`` without a
    ``backend`` keeps its messages in the unit of work when the app has ``SqlModule``. Asked
    while the app is built, before any provider exists (``DynamicModule.resolve``).
    """

    @abc.abstractmethod
    def default_for(self, kind: type) -> object | None:
        """A default for ``kind`` (e.g. ``OutboxBackend``), or ``None`` to offer none."""


class ChecksApp(Extension, abc.ABC):
    """Checks what spans modules once the app's handlers are compiled: ``OutboxModule``
    holds each route against the destinations the app's own consumers listen to.

    dockyard's own, beside a public hook (not in ``HOOKS``): no user extension needs it yet.
    """

    __slots__ = ()

    @abc.abstractmethod
    def check_app(self, graph: ModuleGraph, messages: MessageRegistry) -> list[ModuleProblem]:
        """Every problem found (none: an empty list); raises nothing."""


class ChecksGraph(Extension, abc.ABC):
    """Finds problems across the whole app while it is built (``App.build`` reports them with
    every other one): ``OutboxModule`` checks that each route's destination names one of its
    transports; ``ConsumerModule``, each endpoint's."""

    __slots__ = ()

    @abc.abstractmethod
    def problems(self, graph: ModuleGraph) -> Sequence[ModuleProblem]: ...


HOOKS: tuple[type[Extension], ...] = (
    OnModuleInit,
    OnAppInit,
    OnAppShutdown,
    OnModuleDestroy,
    OnWorkerExit,
    ProvidesBackgroundServices,
    OffersDefaults,
    ChecksGraph,
)
