"""``ConsumerModule``: run endpoints (``listen(...)``) in the app's worker."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence

from dockyard.consumer._listener import Endpoint, Listener
from dockyard.modules import BackgroundService, DynamicModule, ProvidesBackgroundServices, module
from dockyard.outbox import OutboxModule, OutboxStore
from dockyard.outbox._settings import OutboxConfig
from dockyard.transport import Transport

if typing.TYPE_CHECKING:  # hook annotations only; nothing here is resolved by the container
    import asyncio

    from dockyard.app import App

__all__ = ["ConsumerModule"]


class _Deferred:
    """A listener built when the worker starts it (the container is ready by then)."""

    __slots__ = ("_app", "_endpoint")

    reports_health = True  # the listener says when it receives (worker supervision)

    def __init__(self, app: App, endpoint: Endpoint) -> None:
        self._app = app
        self._endpoint = endpoint

    @property
    def name(self) -> str:
        return self._endpoint.name

    async def build(self) -> Listener:
        app = self._app
        component = app.graph.get(OutboxModule).component
        container = app.container
        config = await container.get(OutboxConfig, component=component)
        for info in app.messages.messages:  # every type some handler here accepts
            config.serializer.registry.register(info.message_type)
        return Listener(
            self._endpoint,
            await container.get(Transport, component=component),
            open_scope=app.scope,
            serializer=config.serializer,
            store=await container.get(OutboxStore, component=component),
            component=component,
        )

    async def run(self, stop: asyncio.Event) -> None:
        await (await self.build()).run(stop)


class ConsumerExtension(ProvidesBackgroundServices):
    """Gives the worker one listener per endpoint."""

    __slots__ = ("endpoints",)

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = tuple(endpoints)

    def background_services(self, app: App) -> Sequence[BackgroundService]:
        return [_Deferred(app, endpoint) for endpoint in self.endpoints]


@module()
class ConsumerModule:
    """Endpoints of an app, with concurrency and error policies (needs ``OutboxModule``).

    Example:
        ```text
        ConsumerModule.register(endpoints=[listen("rabbit://orders", group="payments")])
        ```
    """

    @classmethod
    def register(cls, *, endpoints: Iterable[Endpoint]) -> DynamicModule:
        """Run ``endpoints`` in the worker; they use the outbox's transport and dead letters."""
        return DynamicModule(cls, extensions=[ConsumerExtension(tuple(endpoints))])
