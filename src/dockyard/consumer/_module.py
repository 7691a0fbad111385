"""``ConsumerModule``: run an app's endpoints (``listen(...)``) in its worker."""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence

from dockyard.consumer._consumer import Consumer
from dockyard.consumer._endpoint import Endpoint
from dockyard.di import singleton
from dockyard.modules import BackgroundService, DynamicModule, ProvidesBackgroundServices, module
from dockyard.outbox import OutboxConfig, OutboxModule, OutboxStore
from dockyard.transport import Transport

if typing.TYPE_CHECKING:  # hook annotations only; nothing here is resolved by the container
    import asyncio

    from dockyard.app import App

__all__ = ["ConsumerModule", "consumer_of"]


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
    for info in app.messages.messages:  # every type some handler here accepts
        serializer.registry.register(info.message_type)
    return Consumer(
        endpoint,
        transport,
        open_scope=app.scope,
        serializer=serializer,
        store=store,
        component=app.graph.get(OutboxModule).component,  # the inbox's, in each scope
    )


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
        return consumer_of(app, self._endpoint, parts.transport, parts.config, parts.store)

    async def run(self, stop: asyncio.Event) -> None:
        await (await self.build()).run(stop)


class ConsumerExtension(ProvidesBackgroundServices):
    """Gives the worker one consumer per endpoint."""

    __slots__ = ("endpoints",)

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        self.endpoints = tuple(endpoints)

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
