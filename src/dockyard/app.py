"""``App``: one container built from a root module, with a lifecycle and request scopes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, aclosing
from dataclasses import replace
from types import TracebackType
from typing import Any, Self, TypeVar, overload

from dishka import AsyncContainer, Provider, make_async_container
from dishka.exception_base import DishkaError

from dockyard._type_name import type_name
from dockyard.di._spec import ProviderSpec
from dockyard.exceptions import (
    AppNotStartedError,
    ContainerBuildError,
    ModuleConfigurationError,
    ModuleProblem,
)
from dockyard.messaging._bus import Dispatcher, MessageBus
from dockyard.messaging._compile import CompiledMessaging, compile_messaging
from dockyard.messaging._envelope import MessageContext
from dockyard.messaging._messages import Request, StreamRequest
from dockyard.messaging._module import MessagingModule
from dockyard.messaging._registry import MessageRegistry
from dockyard.messaging._settings import MessagingSettings
from dockyard.modules._build import CompiledModules, compile_modules
from dockyard.modules._extensions import (
    BackgroundService,
    ChecksApp,
    OnAppInit,
    OnAppShutdown,
    OnModuleDestroy,
    OnModuleInit,
    OnWorkerExit,
    ProvidesBackgroundServices,
)
from dockyard.modules._graph import ModuleGraph, ModuleNode, build_graph, builtin_node
from dockyard.modules._module import ModuleLike
from dockyard.modules._probes import serve_probes
from dockyard.modules._selection import select_services
from dockyard.modules._supervisor import ReportsHealth, Supervisor, WorkerHealth, describe
from dockyard.telemetry._instruments import Instruments
from dockyard.telemetry._settings import Telemetry

__all__ = ["App", "Lifespan"]

logger = logging.getLogger("dockyard.worker")

T = TypeVar("T")
R = TypeVar("R")

Lifespan = Callable[["App"], AbstractAsyncContextManager[object]]
"""A user lifespan: called with the app at start-up, exited at shutdown (reverse order)."""


class App:
    """A built application: the module graph, one Dishka container and their lifecycle.

    Build it with :meth:`App.build`; run it with ``async with app:``; open a unit of work with
    ``async with app.scope() as scope``.
    """

    __slots__ = (
        "_compiled",
        "_container",
        "_container_closed",
        "_context",
        "_dispatcher",
        "_exit_stack",
        "_instruments",
        "_lifespans",
        "_messaging",
        "_reporters",
        "_root",
        "_started",
        "_supervisors",
        "graph",
    )

    def __init__(
        self,
        root: ModuleLike,
        graph: ModuleGraph,
        compiled: CompiledModules,
        container: AsyncContainer,
        *,
        context: Mapping[Any, Any],
        lifespans: Sequence[Lifespan],
        messaging: CompiledMessaging,
        instruments: Instruments | None = None,
    ) -> None:
        self._root = root
        self._instruments = instruments if instruments is not None else Instruments()
        self.graph = graph
        self._compiled = compiled
        self._messaging = messaging
        self._dispatcher = messaging.dispatcher
        self._container = container
        self._context = dict(context)
        self._lifespans = tuple(lifespans)
        self._exit_stack: AsyncExitStack | None = None
        self._started = False
        self._container_closed = False
        self._supervisors: list[Supervisor] = []
        self._reporters: list[ReportsHealth] = []  # entry points' services (FastStream endpoints)

    @classmethod
    def build(
        cls,
        root: ModuleLike,
        *,
        context: Mapping[Any, Any] | None = None,
        lifespan: Iterable[Lifespan] = (),
        overrides: Iterable[ProviderSpec] = (),
        messaging: MessagingSettings | None = None,
        telemetry: Telemetry | None = None,
    ) -> App:
        """Build an app from its root module, checking every module boundary and handler.

        Args:
            root: The root module (a ``@module`` class or a ``DynamicModule``).
            context: App-wide values for ``contextual(T, lifetime=Lifetime.SINGLETON)``.
            lifespan: Async context manager factories entered at start-up.
            overrides: Providers that replace, by type, whatever the modules provide
                (for tests; see :func:`dockyard.testing.create_test_app`).
            messaging: Pipeline behaviors, event delivery and context tracking.
            telemetry: OpenTelemetry spans and metrics (``docs/telemetry.md``); compiled
                into the dispatch plans, so an app without it pays nothing.

        Raises:
            ModuleConfigurationError: With every problem found, not only the first.
            MissingExtraError: ``telemetry`` is enabled and OpenTelemetry is not installed.
        """
        instruments = Instruments(telemetry)  # first: a missing extra fails before any work
        # Building allocates many small objects that all survive; collecting in the middle
        # of it only costs time (measured: docs/modules.md, "Why this design").
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            graph, problems = build_graph(root)
            compiled: CompiledModules | None = None
            compiled_messaging: CompiledMessaging | None = None
            if graph is not None:  # go on after graph problems, to report everything at once
                graph = replace(graph, builtins=(builtin_node(MessagingModule),))
                compiled, more = compile_modules(graph, tuple(overrides))
                problems += more
                compiled_messaging, more = compile_messaging(
                    graph,
                    messaging or MessagingSettings(),
                    root_visible=compiled.root_visible if compiled else None,
                    providers=compiled.providers if compiled else (),
                )
                problems += more
                if compiled_messaging is not None:
                    problems += _check_app(graph, compiled_messaging.registry)
            if problems or graph is None or compiled is None or compiled_messaging is None:
                raise ModuleConfigurationError(problems)
            if instruments.active:
                from dockyard.telemetry._plans import PlanTracer

                compiled_messaging.dispatcher.instrument(PlanTracer(instruments))
            app_context = {
                **(context or {}),
                Dispatcher: compiled_messaging.dispatcher,
                MessageContext: compiled_messaging.context,
                Instruments: instruments,
            }
            container = _make_container(compiled, compiled_messaging, app_context)
        finally:
            if gc_was_enabled:
                gc.enable()
        return cls(
            root,
            graph,
            compiled,
            container,
            context=app_context,
            lifespans=list(lifespan),
            messaging=compiled_messaging,
            instruments=instruments,
        )

    # -- introspection -------------------------------------------------------------------

    @property
    def modules(self) -> tuple[ModuleNode, ...]:
        """Every module, in init order, with its imports, exports and providers."""
        return self.graph.nodes

    @property
    def messages(self) -> MessageRegistry:
        """Which module handles which message, with handler and behavior names."""
        return self._messaging.registry

    @property
    def instruments(self) -> Instruments:
        """The app's telemetry (``instruments.active`` is ``False`` without ``Telemetry``)."""
        return self._instruments

    @property
    def container(self) -> AsyncContainer:
        """The app-scope Dishka container (for integrations; prefer :meth:`scope`)."""
        return self._container

    @property
    def context_types(self) -> frozenset[Any]:
        """The types ``contextual(T)`` providers declare: what a value given in ``context``
        (of :meth:`build` or :meth:`scope`) can be read as. A value of another type in a
        scope's context is never read."""
        return self._compiled.context_types

    @property
    def is_started(self) -> bool:
        return self._started

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Enter lifespans, run module init hooks (dependencies first), then app init hooks."""
        if self._started:
            return
        if self._container_closed:
            # A closed Dishka container cannot be reopened: a restart gets a fresh one.
            self._container = _make_container(self._compiled, self._messaging, self._context)
            self._container_closed = False
        stack = AsyncExitStack()
        # Lifespans and hooks may resolve dependencies and open scopes while the app starts.
        self._started = True
        try:
            for lifespan in self._lifespans:
                await stack.enter_async_context(lifespan(self))
            for node in self.graph:
                for extension in node.extensions:
                    if isinstance(extension, OnModuleInit):
                        await extension.on_module_init(self, node)
            for extension in self._extensions():
                if isinstance(extension, OnAppInit):
                    await extension.on_app_init(self)
        except BaseException as exc:
            self._started = False
            try:
                self._container_closed = True
                await self._container.close(exc)
            finally:
                await stack.aclose()
            raise
        self._exit_stack = stack

    async def stop(self, exc: BaseException | None = None) -> None:
        """Run shutdown hooks, destroy modules in reverse order, close the container."""
        if not self._started:
            return
        self._started = False
        stack, self._exit_stack = self._exit_stack, None
        try:
            for extension in reversed(self._extensions()):
                if isinstance(extension, OnAppShutdown):
                    await extension.on_app_shutdown(self)
            for node in reversed(self.graph.nodes):
                for extension in reversed(node.extensions):
                    if isinstance(extension, OnModuleDestroy):
                        await extension.on_module_destroy(self, node)
        finally:
            try:
                self._container_closed = True
                await self._container.close(exc)
            finally:
                if stack is not None:
                    await stack.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(exc)

    def background_services(
        self, *, only: Sequence[str] = (), skip: Sequence[str] = ()
    ) -> list[BackgroundService]:
        """Every background service the modules' extensions contribute, in module order.

        Args:
            only: Glob patterns (``fnmatch``, case-sensitive, over the whole name): only the
                services whose names match one of them. All services if empty.
            skip: Glob patterns: leave out the services whose names match one of them.

        Raises:
            UnknownServiceError: A pattern matches none of the app's services, or ``only``
                and ``skip`` leave none.
        """
        services = [
            service
            for extension in self._extensions()
            if isinstance(extension, ProvidesBackgroundServices)
            for service in extension.background_services(self)
        ]
        return select_services(services, only, skip) if only or skip else services

    def health(self) -> WorkerHealth:
        """The state of each background service of the worker running in this process.

        Each is ``starting``, ``running``, ``degraded`` (with the reason: an outage it waits
        out), ``stopped`` or ``failed``. Empty until :meth:`run_worker` starts (or a web
        app runs them with ``background_services=True``); after it returns, the states it
        ended with. The endpoints a FastStream app runs through
        ``dockyard.integrations.faststream`` are listed too. ``dockyard worker
        --health-port N`` serves this as ``/livez`` and ``/readyz``.
        """
        return WorkerHealth(tuple(s.health() for s in (*self._supervisors, *self._reporters)))

    async def run_worker(
        self,
        *,
        stop: asyncio.Event | None = None,
        grace: float = 30.0,
        health_port: int | None = None,
        max_backoff: float = 10.0,
        only: Sequence[str] = (),
        skip: Sequence[str] = (),
    ) -> None:
        """Run every background service (relays, projections, consumers, sagas) until stopped.

        ``only`` and ``skip`` (glob patterns over the services' names, as
        :meth:`background_services` takes them) run a part of them, to split an app's
        services across processes: ``only=["outbox-relay:nats"]`` in one process,
        ``skip=["outbox-relay:nats"]`` in another. They are checked before the app starts.

        Each service runs under a supervisor: an outage (database or broker down, refusing
        or dropping connections) makes it *degraded*, not dead; it is restarted with backoff
        (jittered, doubling up to ``max_backoff`` seconds) and resumes where it was. Only a
        bug or a configuration error ends a service; then the others are stopped too and
        the error is raised. See ``docs/operations.md``.

        Stops on SIGTERM or SIGINT (or when ``stop`` is set): the services finish their
        in-flight work and release their leases; whatever has not stopped after ``grace``
        seconds (or at a second signal) is cancelled. Starts the app first if it is not
        started (and then stops it at the end).

        Args:
            stop: Set it to stop the worker (signals set it too).
            grace: Seconds the services get to finish in-flight work once told to stop.
            health_port: Serve ``/livez`` and ``/readyz`` on this port while running.
            max_backoff: The longest wait between two restarts of a service in an outage.
            only: Run only the services whose names match one of these patterns.
            skip: Do not run the services whose names match one of these patterns.

        Raises:
            UnknownServiceError: A pattern of ``only`` or ``skip`` matches no service, or
                they leave none to run (raised before anything starts).
            ExceptionGroup: The errors of the services that failed.
        """
        services = self.background_services(only=only, skip=skip)
        stop = stop if stop is not None else asyncio.Event()
        force = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: signal.Signals) -> None:
            if stop.is_set():
                logger.warning("%s again: cancelling what is still running", signum.name)
                force.set()
                return
            logger.info("%s: stopping (grace %.0fs; send it again to force)", signum.name, grace)
            stop.set()

        signals: list[signal.Signals] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, on_signal, signum)  # main thread, Unix only
                signals.append(signum)
        owns_lifecycle = not self._started
        probes: asyncio.Server | None = None
        try:
            if owns_lifecycle:
                await self.start()
            self._supervisors = supervisors = [
                Supervisor(s, max_backoff=max_backoff) for s in services
            ]
            if health_port is not None:
                probes = await serve_probes(self.health, health_port)
            tasks = [asyncio.create_task(s.run(stop), name=s.name) for s in supervisors]
            await _until_stopped(tasks, stop, force, grace)
            errors = [
                e
                for t in tasks
                if t.done() and not t.cancelled() and (e := t.exception()) is not None
            ]
            if errors:
                msg = f"{len(errors)} of {len(tasks)} background services failed"
                raise BaseExceptionGroup(
                    msg, errors
                )  # an ExceptionGroup unless one is not an Exception
        finally:
            if probes is not None:
                probes.close()
            if owns_lifecycle:
                await _stop_app(self, force, grace)
                await self._exit_worker()
            for signum in signals:
                loop.remove_signal_handler(signum)

    async def _exit_worker(self) -> None:
        """Run the ``OnWorkerExit`` hooks, logging (not raising) what fails: the worker is
        stopping all the same."""
        for extension in reversed(self._extensions()):
            if isinstance(extension, OnWorkerExit):
                try:
                    await extension.on_worker_exit(self)
                except Exception as exc:  # noqa: BLE001 -- one line, the stop goes on
                    logger.warning("on exit, %s: %s", type_name(type(extension)), describe(exc))

    def _extensions(self) -> list[object]:
        return [extension for node in self.graph for extension in node.extensions]

    # -- resolution ----------------------------------------------------------------------

    def scope(self, context: Mapping[Any, Any] | None = None) -> AsyncContainer:
        """Open a request scope (one unit of work): ``async with app.scope() as scope``.

        Args:
            context: Values for ``contextual(T)`` providers, keyed by type.
        """
        if not self._started:
            raise AppNotStartedError("open a scope")
        return self._container(context=dict(context) if context else None)

    @overload
    async def get(self, dependency: type[T]) -> T: ...
    @overload
    async def get(self, dependency: Any) -> Any: ...  # Protocols and other abstract ports
    async def get(self, dependency: Any) -> Any:
        """Resolve an app-wide (singleton) dependency that the root module can see."""
        if not self._started:
            raise AppNotStartedError(f"resolve `{type_name(dependency)}`")
        return await self._container.get(dependency)

    # -- messaging shortcuts: each opens a scope ------------------------------------------

    async def send(
        self,
        request: Request[R],
        /,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> R:
        """Send ``request`` in a new scope; see :meth:`dockyard.messaging.ISender.send`.

        Inside a handler, inject ``ISender`` instead: it reuses the handler's scope.
        """
        if not self._started:
            raise AppNotStartedError("send a message")
        async with self._container() as scope:
            result: R = await self._dispatcher.send_in(
                scope, request, message_id, correlation_id, causation_id, headers
            )
            return result

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
        """Publish ``event`` in a new scope; see :meth:`dockyard.messaging.IPublisher.publish`."""
        if not self._started:
            raise AppNotStartedError("publish an event")
        async with self._container() as scope:
            await self._dispatcher.publish_in(
                scope, event, message_id, correlation_id, causation_id, headers
            )

    async def stream(
        self,
        request: StreamRequest[T],
        /,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[T]:
        """Stream the answer to ``request`` in a scope that stays open until the stream ends.

        See :meth:`dockyard.messaging.ISender.stream`.
        """
        if not self._started:
            raise AppNotStartedError("stream a request")
        async with self._container() as scope:
            bus = MessageBus(self._dispatcher, scope)
            items = bus.stream(
                request,
                message_id=message_id,
                correlation_id=correlation_id,
                causation_id=causation_id,
                headers=headers,
            )
            async with aclosing(items):
                async for item in items:
                    yield item

    def _replace_container(self, compiled: CompiledModules) -> AsyncContainer:
        """Swap in a container built from ``compiled``; return the previous one (for tests)."""
        previous = self._container
        self._compiled = compiled
        self._container = _make_container(compiled, self._messaging, self._context)
        return previous

    def _restore_container(self, container: AsyncContainer, compiled: CompiledModules) -> None:
        self._container = container
        self._compiled = compiled

    @property
    def root(self) -> ModuleLike:
        return self._root


async def _stop_app(app: App, force: asyncio.Event, grace: float) -> None:
    """``app.stop()``, logging (not raising) its errors; given up at a second signal."""
    stopping: asyncio.Future[Any] = asyncio.ensure_future(app.stop())
    forcing: asyncio.Future[Any] = asyncio.ensure_future(force.wait())
    await asyncio.wait([stopping, forcing], timeout=grace, return_when=FIRST_COMPLETED)
    forcing.cancel()
    if not stopping.done():
        logger.warning("stopping the app: given up (forced, or over the grace period)")
        stopping.cancel()
    results = await asyncio.gather(stopping, forcing, return_exceptions=True)
    if isinstance(results[0], Exception):  # the worker stops all the same: one line
        logger.error("stopping the app: %s", describe(results[0]))


_AFTER_CANCEL = 5.0
"""Seconds a cancelled background service gets to end before the worker stops without it."""


async def _until_stopped(
    tasks: list[asyncio.Task[None]], stop: asyncio.Event, force: asyncio.Event, grace: float
) -> None:
    """Wait for ``stop`` (or a service that ended), then up to ``grace`` for every task."""
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    forcing: asyncio.Future[Any] = asyncio.ensure_future(force.wait())
    try:
        await asyncio.wait([*tasks, stopping], return_when=FIRST_COMPLETED)
        stop.set()  # a service that ended on its own (or failed) stops the others
        finished: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.wait([finished, forcing], timeout=grace, return_when=FIRST_COMPLETED)
        for task in tasks:
            task.cancel()  # those past the grace period, or all at a second signal
        # A task that swallows its cancellation must not hold the process: wait a little,
        # then name what is left and go on stopping without it.
        await asyncio.wait([finished], timeout=_AFTER_CANCEL)
        stuck = [task.get_name() for task in tasks if not task.done()]
        if stuck:
            logger.error(
                "%s did not stop when cancelled; leaving it behind", ", ".join(sorted(stuck))
            )
    finally:
        for waiter in (stopping, forcing):
            waiter.cancel()
        await asyncio.gather(stopping, forcing, return_exceptions=True)


def _check_app(graph: ModuleGraph, messages: MessageRegistry) -> list[ModuleProblem]:
    """What the modules' ``ChecksApp`` extensions find in the compiled app."""
    return [
        problem
        for node in graph.all_nodes
        for extension in node.extensions
        if isinstance(extension, ChecksApp)
        for problem in extension.check_app(graph, messages)
    ]


def _make_container(
    compiled: CompiledModules, messaging: CompiledMessaging, context: Mapping[Any, Any]
) -> AsyncContainer:
    providers: tuple[Provider, ...] = (*compiled.providers, *messaging.providers)
    try:
        return make_async_container(*providers, context=dict(context))
    except DishkaError as exc:
        raise ContainerBuildError(str(exc)) from exc
