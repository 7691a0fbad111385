"""``SagasModule``: registers sagas, starts them in scopes, runs them in the worker."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from typing import Any

from dishka import AsyncContainer

from dockyard.di import contextual, object_, scoped, singleton
from dockyard.exceptions import InvalidSagaError
from dockyard.modules import (
    BackgroundService,
    Defaults,
    DynamicModule,
    ModuleLike,
    OnModuleInit,
    ProvidesBackgroundServices,
    module,
)
from dockyard.sagas._backend import SagaBackend
from dockyard.sagas._control import SagaControl
from dockyard.sagas._definition import Saga
from dockyard.sagas._plan import Plan
from dockyard.sagas._registry import SagaRegistry
from dockyard.sagas._remote import remote_registrations
from dockyard.sagas._runner import SagaRunner
from dockyard.sagas._sagas import Sagas, SagaStepContext
from dockyard.sagas._settings import SagaSettings
from dockyard.sagas._store import SagaStore
from dockyard.sagas.memory import InMemorySagaBackend
from dockyard.serialization import Serializer

if typing.TYPE_CHECKING:  # hook annotations only; nothing here is resolved by the container
    from dockyard.app import App
    from dockyard.modules import ModuleNode

__all__ = ["SagasModule", "check_sagas", "registry_of", "sagas_of"]


class SagasExtension(OnModuleInit, ProvidesBackgroundServices):
    """Records the module's component at start-up; gives the worker the saga runner."""

    __slots__ = ("registry", "run_runner")

    def __init__(self, registry: SagaRegistry, *, run_runner: bool) -> None:
        self.registry = registry
        self.run_runner = run_runner

    async def on_module_init(self, app: App, module: ModuleNode) -> None:  # noqa: ARG002
        self.registry.component = module.component

    def background_services(self, app: App) -> Sequence[BackgroundService]:
        node = app.graph.get(SagasModule)
        registry = self.registry
        registry.component = node.component

        async def resolve() -> tuple[AsyncContainer, SagaStore]:
            store: SagaStore = await app.container.get(SagaStore, component=node.component)
            return app.container, store

        if not self.run_runner or not registry.plans:
            return []
        return [SagaRunner(registry, resolve, instruments=app.instruments)]


def sagas_of(app: App) -> tuple[Saga[Any], ...]:
    """The saga definitions the app's ``SagasModule`` registers (none without one).

    Read from the built app, without starting it (``dockyard describe``, ``dockyard graph``).
    """
    registry = registry_of(app)
    return () if registry is None else tuple(p.saga for p in registry.plans.values())


def registry_of(app: App) -> SagaRegistry | None:
    """The registry of the app's ``SagasModule`` (``None`` without one), read from the built
    app without starting it."""
    for node in app.graph:
        for extension in node.extensions:
            if isinstance(extension, SagasExtension):
                return extension.registry
    return None


def check_sagas(sagas: Iterable[object]) -> list[str]:
    """Every problem of ``sagas`` together: each definition's, and names used twice."""
    problems: list[str] = []
    seen: set[str] = set()
    for saga in sagas:
        if not isinstance(saga, Saga):
            problems.append(f"`{saga!r}` is not a `Saga`")
            continue
        problems += saga.problems()
        if saga.name in seen:
            problems.append(f"two sagas are named `{saga.name}`; saga names are unique")
        seen.add(saga.name)
    return problems


@module()
class SagasModule:
    """Orchestrated sagas of an app: register it once, at the root.

    Exports ``Sagas`` (start instances in a scope's transaction) and ``SagaControl`` to every
    module (it is global), and gives the worker (``dockyard worker``, ``app.run_worker()``)
    a ``SagaRunner``. Each step handler is provided inside this module, so list in
    ``imports`` the modules that provide what the handlers need.
    """

    @classmethod
    def register(
        cls,
        *,
        sagas: Iterable[Saga[Any]],
        backend: SagaBackend | None = None,
        imports: Iterable[ModuleLike] = (),
        settings: SagaSettings | None = None,
        serializer: Serializer | None = None,
        run_runner: bool = True,
    ) -> DynamicModule:
        """Configure the app's sagas.

        Args:
            sagas: The saga definitions, checked here all at once.
            backend: By default ``dockyard.sql.SqlSagaBackend()`` (instances in the SQL unit
                of work, with the steps' writes) when the app has ``SqlModule``, wherever it
                is registered, else ``InMemorySagaBackend()`` (this process's memory).
            imports: Modules providing what the step handlers need.
            settings: Concurrency, leases, polling and default retries of the runner.
            serializer: Encodes saga state (pass the one with your upcasters); a new one by
                default.
            run_runner: Give the worker a runner (turn off in an app that only starts sagas).

        Raises:
            InvalidSagaError: With every problem of every definition.
        """
        sagas = tuple(sagas)
        problems = check_sagas(sagas)
        if problems:
            raise InvalidSagaError(problems)
        settings = settings or SagaSettings()
        serializer = serializer or Serializer()
        for saga in sagas:  # a worker decodes state it never encoded: know its name up front
            serializer.registry.entry_for(saga.state)
        registry = SagaRegistry({s.name: Plan(s, settings) for s in sagas}, settings, serializer)
        handlers = dict.fromkeys(h for plan in registry.plans.values() for h in plan.handlers)
        remote_scoped, reply_handlers = remote_registrations(registry.plans.values())

        def registration(chosen: SagaBackend) -> DynamicModule:
            return DynamicModule(
                cls,
                providers=[
                    *chosen.providers(),
                    object_(registry, provides=SagaRegistry),
                    scoped(Sagas),
                    singleton(SagaControl),
                    contextual(SagaStepContext),
                    *(scoped(handler) for handler in handlers),
                    *(scoped(provided) for provided in remote_scoped),
                ],
                handlers=reply_handlers,
                imports=[*chosen.imports(), *imports],
                exports=[Sagas, SagaControl],
                extensions=[SagasExtension(registry, run_runner=run_runner)],
                is_global=True,
            )

        if backend is not None:
            return registration(backend)

        def resolve(defaults: Defaults) -> DynamicModule:
            offered = defaults(SagaBackend)  # SqlModule's, when the app has one
            chosen = InMemorySagaBackend() if offered is None else offered
            return registration(typing.cast("SagaBackend", chosen))

        return DynamicModule(cls, resolve=resolve)
