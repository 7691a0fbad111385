"""``ProcessManagersModule``: registers process managers as handlers of the messages they take."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from dockyard.di import ProviderSpec, object_, scoped, singleton
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
from dockyard.outbox._module import OutboxModule
from dockyard.sagas._memory_processes import InMemoryProcessBackend
from dockyard.sagas._process import ProcessManager, RouteKind
from dockyard.sagas._process_control import ProcessControl, ProcessRetention
from dockyard.sagas._process_runtime import ProcessRegistry, ProcessRuntime, entry_for
from dockyard.sagas._process_store import ProcessStatus, ProcessStore
from dockyard.sagas._settings import ProcessSettings
from dockyard.serialization import Serializer

if typing.TYPE_CHECKING:  # hook annotations only; nothing here is resolved by the container
    from dockyard.app import App
    from dockyard.modules import ModuleNode

__all__ = ["ProcessBackend", "ProcessInstance", "ProcessManagersModule", "Processes"]

S = TypeVar("S")


class ProcessBackend(Protocol):
    """Provides ``ProcessStore`` (app-wide) and ``ProcessWriter`` (per scope).

    ``dockyard.sagas.memory.InMemoryProcessBackend`` or ``dockyard.sql.SqlProcessBackend``
    (instances in the unit of work's transaction, the default with ``SqlModule``).
    """

    def providers(self) -> Sequence[ProviderSpec]: ...

    def imports(self) -> Sequence[ModuleLike]: ...


@dataclass(frozen=True, slots=True)
class ProcessInstance(Generic[S]):
    """A process manager instance as stored, with its decoded state."""

    name: str
    key: str
    status: ProcessStatus
    state: S
    version: int
    timeout_id: str | None
    """The message id of its pending timeout (a scheduled outbox message), if it has one."""
    timeout_at: float | None
    """When that timeout is due (epoch seconds)."""


class Processes:
    """Reads process manager instances; inject it (``ProcessManagersModule`` exports it)."""

    __slots__ = ("_registry", "_store")

    def __init__(self, store: ProcessStore, registry: ProcessRegistry) -> None:
        self._store = store
        self._registry = registry

    async def get(self, process: ProcessManager[S], key: str, /) -> ProcessInstance[S] | None:
        """The instance of ``process`` for ``key`` (whatever its status), or ``None``.

        Raises:
            ValueError: ``process`` is not registered in this app.
        """
        registered = self._registry.processes
        if registered.get(process.name) is not process:
            msg = (
                f"process manager `{process.name}` is not registered in this app; list it in "
                f"`ProcessManagersModule.register(processes=[...])` (registered: "
                f"{', '.join(registered) or 'none'})"
            )
            raise ValueError(msg)
        record = await self._store.get(process.name, key)
        if record is None:
            return None
        state = typing.cast(
            "S",
            self._registry.serializer.deserialize(
                record.state_type, record.state_schema, record.state
            ),
        )
        return ProcessInstance(
            record.name,
            record.key,
            record.status,
            state,
            record.version,
            record.timeout_id,
            record.timeout_at,
        )


class _ProcessesExtension(OnModuleInit, ProvidesBackgroundServices):
    """Records the module's component at start-up; gives the worker the retention purge."""

    __slots__ = ("registry", "settings")

    def __init__(self, registry: ProcessRegistry, settings: ProcessSettings) -> None:
        self.registry = registry
        self.settings = settings

    async def on_module_init(self, app: App, module: ModuleNode) -> None:  # noqa: ARG002
        self.registry.component = module.component

    def background_services(self, app: App) -> Sequence[BackgroundService]:
        if self.settings.retain_finished is None:
            return []
        node = app.graph.get(ProcessManagersModule)

        async def resolve() -> ProcessStore:
            store: ProcessStore = await app.container.get(ProcessStore, component=node.component)
            return store

        return [ProcessRetention(resolve, self.settings)]


def check_processes(processes: Iterable[object]) -> list[str]:
    """Every problem of every definition, and names used twice."""
    problems: list[str] = []
    seen: set[str] = set()
    for process in processes:
        if not isinstance(process, ProcessManager):
            problems.append(f"`{process!r}` is not a `ProcessManager`")
            continue
        problems += process.problems()
        if process.name in seen:
            problems.append(f"two process managers are named `{process.name}`")
        seen.add(process.name)
    return problems


@module()
class ProcessManagersModule:
    """Process managers of an app: register it once, at the root.

    Each message type a process manager takes becomes an event handler of this module, so
    publishing it (``IPublisher``, a consumer) feeds the instance its key names, in the
    publisher's scope and transaction. Exports ``Processes`` (read instances) and
    ``ProcessControl`` (list, cancel, purge) to every module.
    """

    @classmethod
    def register(
        cls,
        *,
        processes: Iterable[ProcessManager[Any]],
        backend: ProcessBackend | None = None,
        imports: Iterable[ModuleLike] = (),
        serializer: Serializer | None = None,
        settings: ProcessSettings | None = None,
    ) -> DynamicModule:
        """Configure the app's process managers.

        Args:
            processes: The definitions, checked here all at once.
            backend: By default ``dockyard.sql.SqlProcessBackend()`` when the app has
                ``SqlModule`` (instances in the unit of work), else ``InMemoryProcessBackend()``.
            imports: Modules providing what the handlers need.
            serializer: Encodes the states (pass the one with your upcasters).
            settings: Retention of finished instances (``retain_finished``), which the
                worker then purges by itself.

        Raises:
            InvalidSagaError: With every problem of every definition.
        """
        processes = tuple(processes)
        problems = check_processes(processes)
        if problems:
            raise InvalidSagaError(problems)
        serializer = serializer or Serializer()
        for process in processes:
            serializer.registry.entry_for(process.state)
        registry = ProcessRegistry({p.name: p for p in processes}, serializer)
        handlers = dict.fromkeys(r.handler for p in processes for r in p.handlers)
        entries = [  # an event-store-sourced one gets its events from process_projection()
            entry_for(p, r)
            for p in processes
            for r in p.handlers
            if p.source == "messages" or r.kind is RouteKind.TIMEOUT
        ]
        timeouts = any(r.kind is RouteKind.TIMEOUT for p in processes for r in p.handlers)

        def registration(chosen: ProcessBackend) -> DynamicModule:
            return DynamicModule(
                cls,
                providers=[
                    *chosen.providers(),
                    object_(registry, provides=ProcessRegistry),
                    scoped(ProcessRuntime),
                    singleton(Processes),
                    singleton(ProcessControl),
                    *(scoped(handler) for handler in handlers),
                ],
                imports=[*chosen.imports(), *((OutboxModule,) if timeouts else ()), *imports],
                # process_projection() needs the runtime
                exports=[Processes, ProcessControl, ProcessRuntime],
                extensions=[_ProcessesExtension(registry, settings or ProcessSettings())],
                handlers=entries,
                is_global=True,
            )

        if backend is not None:
            return registration(backend)

        def resolve(defaults: Defaults) -> DynamicModule:
            offered = defaults(ProcessBackend)  # SqlModule's, when the app has one
            chosen = InMemoryProcessBackend() if offered is None else offered
            return registration(typing.cast("ProcessBackend", chosen))

        return DynamicModule(cls, resolve=resolve)
