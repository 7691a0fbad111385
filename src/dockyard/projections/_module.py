"""``ProjectionsModule``: registers projections and subscriptions, runs them in the worker."""

from __future__ import annotations

import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from dishka import AsyncContainer

from dockyard.di import object_, scoped, singleton
from dockyard.eventsourcing._store import EventStore
from dockyard.exceptions import InvalidProjectionError
from dockyard.messaging._handlers import EventHandler
from dockyard.modules._extensions import BackgroundService, OnModuleInit, ProvidesBackgroundServices
from dockyard.modules._module import DynamicModule, ModuleLike, module
from dockyard.projections._checkpoints import CheckpointStore
from dockyard.projections._control import ProjectionControl, ProjectionRegistry
from dockyard.projections._leases import LeaseStore
from dockyard.projections._projection import Projection, Target, target_of
from dockyard.projections._runner import CatchUpRunner
from dockyard.projections._settings import RunnerSettings

if typing.TYPE_CHECKING:  # annotations of hooks only; nothing here is resolved by the container
    from dockyard.app import App
    from dockyard.modules._graph import ModuleNode

__all__ = ["ProjectionsModule", "find_registry"]


class CatchUpNeeds:
    """What catch-up runners resolve in the module; listed so ``App.build`` checks it."""

    __slots__ = ()

    def __init__(
        self, events: EventStore, checkpoints: CheckpointStore, leases: LeaseStore
    ) -> None:
        del events, checkpoints, leases


def make_control(container: AsyncContainer, registry: ProjectionRegistry) -> ProjectionControl:
    return ProjectionControl(container, registry)


class ProjectionsExtension(OnModuleInit, ProvidesBackgroundServices):
    """Records the module's component at start-up; gives the worker one runner per target."""

    __slots__ = ("registry",)

    def __init__(self, registry: ProjectionRegistry) -> None:
        self.registry = registry

    async def on_module_init(self, app: App, module: ModuleNode) -> None:  # noqa: ARG002
        self.registry.component = module.component

    def background_services(self, app: App) -> Sequence[BackgroundService]:
        node = app.graph.get(ProjectionsModule)
        self.registry.component = node.component

        async def control() -> ProjectionControl:
            found: ProjectionControl = await app.container.get(
                ProjectionControl, component=node.component
            )
            return found

        return [
            CatchUpRunner(name, control, instruments=app.instruments)
            for name in self.registry.targets
        ]


@module()
class ProjectionsModule:
    """Catch-up projections, catch-up subscriptions and inline projections of an app.

    Register it once, importing the modules that provide what it needs: an ``EventStore``, a
    ``CheckpointStore`` and a ``LeaseStore`` (plus, for SQL read models, a scoped
    ``dockyard.messaging.UnitOfWork`` that the runner commits, and optionally an
    ``EventNotifier``). It exports ``ProjectionControl``.
    """

    @classmethod
    def register(
        cls,
        *,
        projections: Iterable[type[Projection]] = (),
        subscriptions: Iterable[type[EventHandler[Any]]] = (),
        inline: Iterable[type[Projection]] = (),
        imports: Iterable[ModuleLike] = (),
        settings: RunnerSettings | None = None,
    ) -> DynamicModule:
        """Configure the app's projections.

        Args:
            projections: Catch-up projections, each followed by a runner from its checkpoint.
            subscriptions: ``EventHandler[E]`` classes run the same way (checkpointed under
                their class name), for reactions that must see every event once, in order.
            inline: Projections run as event handlers in the scope that publishes the event,
                so their writes commit (or roll back) with the command.
            imports: Modules providing the stores and the projections' dependencies.
            settings: Batching, polling, leases and retries of the runners.

        Raises:
            InvalidProjectionError: A class is not a projection, handles nothing, or two
                share a name.
        """
        targets: dict[str, Target] = {}
        for cls_ in (*projections, *subscriptions):
            target = target_of(cls_)
            previous = targets.get(target.name)
            if previous is not None:
                raise InvalidProjectionError(
                    cls_,
                    f"has the name `{target.name}`, already used by `{previous.display}`",
                    "give one of them another `name` (it names the checkpoint)",
                )
            targets[target.name] = target
        inline_classes = tuple(inline)
        handlers = [h for projection in inline_classes for h in inline_handlers(projection)]
        registry = ProjectionRegistry(targets, settings or RunnerSettings(), inline=inline_classes)
        classes = dict.fromkeys([*(t.cls for t in targets.values()), *inline_classes])
        providers = [
            object_(registry, provides=ProjectionRegistry),
            singleton(make_control),
            *(scoped(c) for c in classes),
        ]
        if targets:
            providers.append(scoped(CatchUpNeeds))
        return DynamicModule(
            cls,
            providers=providers,
            imports=imports,
            exports=[ProjectionControl],
            extensions=[ProjectionsExtension(registry)],
            handlers=handlers,
        )


def inline_handlers(projection: type[Projection]) -> list[type]:
    """One ``EventHandler[E]`` per event type the projection handles, delegating to it.

    The handler is resolved in the publishing scope, so the projection gets that scope's unit
    of work: its writes are part of the command's transaction.
    """
    target = target_of(projection)
    found: list[type] = []
    for event_type, (method, wants_recorded) in projection.__handlers__.items():
        if wants_recorded:
            raise InvalidProjectionError(
                projection,
                f"runs inline, but `{method.__name__}` asks for the `RecordedEvent`, which "
                "does not exist before the transaction commits",
                "take only `(self, event)`, or register the projection as a catch-up one",
            )
        found.append(_inline_handler(target, event_type, method))
    return found


def _inline_handler(
    target: Target, event_type: type, method: Callable[[Any, Any], Awaitable[None]]
) -> type:
    projection = target.cls

    def __init__(self: Any, projection: Any) -> None:  # noqa: N807 - it is the constructor
        self._projection = projection

    __init__.__annotations__ = {"projection": projection, "return": None}

    async def handle(self: Any, event: Any, /) -> None:
        await method(self._projection, event)
        await self._projection.flush()

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(
            __slots__=("_projection",),
            __init__=__init__,
            handle=handle,
            __module__=projection.__module__,
            __qualname__=f"{projection.__qualname__}.{method.__name__}",
        )

    base: Any = EventHandler
    return types.new_class(
        f"{projection.__name__}.{method.__name__}", (base[event_type],), {}, body
    )


def find_registry(app: App) -> tuple[ProjectionRegistry, str]:
    """The app's projection registry and the module's component.

    Raises:
        LookupError: The app does not register ``ProjectionsModule``.
    """
    for node in app.graph:
        for extension in node.extensions:
            if isinstance(extension, ProjectionsExtension):
                extension.registry.component = node.component
                return extension.registry, node.component
    msg = "the app does not register `ProjectionsModule`; add `ProjectionsModule.register(...)`"
    raise LookupError(msg)
