"""FastStream as a door into a dockyard app: its lifespan, its subscribers, its handlers.

``setup_dockyard(stream, app, endpoints=[listen("orders", group="billing")])`` wires a dockyard
``App`` into a FastStream application of your own (``FastStream(broker)``):

* the app starts before the broker connects and stops after it has disconnected, once;
* each endpoint becomes a subscriber on your broker whose messages go through the consumer
  runtime of ``dockyard worker`` (``Consumer.handle``): the envelope checked and decoded, one
  scope (one unit of work) per message, the inbox dropping redeliveries, the endpoint's error
  policies, dead letters with the reason for what cannot be handled;
* your own ``@broker.subscriber`` handlers take ``FromDockyard[T]``: ``T`` resolved in a
  dockyard scope of the message, committed when the handler returns.

Supports FastStream 0.6 and 0.7 (``>=0.6,<0.8``, what dockyard's broker extras install);
importing this module with another release raises ``UnsupportedReleaseError``. See
``docs/faststream.md`` and ``docs/design/faststream.md``.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

from dockyard.exceptions import MissingExtraError, UnsupportedReleaseError
from dockyard.transport._borrowed import release

SUPPORTED_FASTSTREAM = ((0, 6), (0, 8))
"""The FastStream releases this integration supports: from 0.6 up to (not including) 0.8."""
_SUPPORTED_TEXT = "0.6 and 0.7 (>=0.6,<0.8)"


def check_release(installed: tuple[int, ...]) -> None:
    """Raise ``UnsupportedReleaseError`` unless ``installed`` (FastStream's release, as
    numbers) is one this integration supports (``SUPPORTED_FASTSTREAM``)."""
    low, high = SUPPORTED_FASTSTREAM
    if not low <= installed < high:
        shown = ".".join(map(str, installed)) or "an unknown release"
        raise UnsupportedReleaseError(__name__, "faststream", shown, _SUPPORTED_TEXT, "rabbit")


try:
    from dishka import AsyncContainer
    from dishka.exceptions import ExitError
    from faststream import Context, Depends, FastStream
    from faststream.message import StreamMessage
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError(
        __name__, "FastStream with a broker's client (extras: rabbit, nats, redis, kafka)", "rabbit"
    ) from exc

check_release(release("faststream"))

from dockyard.consumer import Consumer, Endpoint  # noqa: E402 - FastStream checked first
from dockyard.consumer._module import consumer_of  # noqa: E402
from dockyard.integrations._web import (  # noqa: E402
    check_injections,
    resolver,
    running_services,
    serving,
)
from dockyard.modules._supervisor import (  # noqa: E402
    Outage,
    ServiceHealth,
    ServiceState,
    backoff,
    describe,
    is_outage,
)
from dockyard.outbox import Inbox, OutboxConfig, OutboxModule, OutboxStore  # noqa: E402
from dockyard.transport import Delivery  # noqa: E402
from dockyard.transport._faststream import FastStreamTransport  # noqa: E402

if TYPE_CHECKING:  # an entry point never imports the app at run time (import direction)
    from dockyard.app import App

__all__ = ["SUPPORTED_FASTSTREAM", "FromDockyard", "check_release", "setup_dockyard"]

logger = logging.getLogger("dockyard.consumer")

T = TypeVar("T")

_APP_KEY = "dockyard_app"
"""The FastStream context's key of the dockyard app (``Context("dockyard_app")``)."""
_MAX_BACKOFF = 10.0
"""The longest wait between two tries of a message while the database (or broker) is down."""
_TRANSPORTS = (
    ("dockyard.transport.rabbit", "RabbitTransport", "faststream.rabbit", "RabbitBroker"),
    ("dockyard.transport.nats", "NatsTransport", "faststream.nats", "NatsBroker"),
    ("dockyard.transport.redis", "RedisTransport", "faststream.redis", "RedisBroker"),
    ("dockyard.transport.kafka", "KafkaTransport", "faststream.kafka", "KafkaBroker"),
)
"""Which transport runs endpoints on which kind of FastStream broker."""


def setup_dockyard(
    stream: FastStream,
    app: App,
    *,
    endpoints: Iterable[Endpoint] = (),
    transport: FastStreamTransport | None = None,
    background_services: bool = False,
    grace: float = 30.0,
) -> None:
    """Attach ``app`` to ``stream``: lifespan, consumer endpoints, ``FromDockyard`` injection.

    Call it where the FastStream app is made, before adding start-up hooks of your own that
    use the dockyard app (hooks run in the order they were added).

    Args:
        stream: Your FastStream application.
        app: The dockyard app its subscribers use.
        endpoints: ``listen(destination, group=..., concurrency=..., policies=...)``: each
            becomes a subscriber on the broker handling dockyard messages as ``dockyard
            worker`` does (the same queue, consumer or group, so the two can share a group).
        transport: The dockyard transport whose broker and settings the endpoints use
            (e.g. the ``RabbitTransport(broker=broker)`` your ``OutboxModule`` publishes
            through); by default one made over ``stream``'s broker for its kind.
        background_services: Also run the app's relays, projections and ``ConsumerModule``
            consumers in this process, supervised as in ``dockyard worker``. Off by default.
        grace: Seconds in-flight messages and background services get to finish at shutdown.

    At start-up (before the app starts) every ``FromDockyard[T]`` of the broker's handlers
    is checked against what the root module can see, and endpoints need ``OutboxModule``
    (its inbox and dead letters); all problems are raised at once as a
    ``ModuleConfigurationError``.

    Raises:
        ValueError: ``stream`` has no broker, ``transport`` runs on a broker that is not
            ``stream``'s, endpoints are given for a broker dockyard has no transport for
            (RabbitMQ, NATS, Redis and Kafka have one), or an endpoint is listed twice.
    """
    endpoints = tuple(endpoints)
    if stream.broker is None:
        raise ValueError("setup_dockyard() needs a FastStream app with a broker")
    if transport is None:
        transport = _transport_for(stream.broker) if endpoints else None
    elif not any(transport.broker is broker for broker in stream.brokers):
        raise ValueError(f"{transport!r} runs on a broker that is not one of this FastStream app's")
    names = [endpoint.name for endpoint in endpoints]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"setup_dockyard() lists an endpoint twice: {', '.join(repeated)}")
    stream.context.set_global(_APP_KEY, app)
    wiring = _Wiring(stream, app, transport, endpoints, background_services, grace)
    stream.on_startup(wiring.on_startup)
    stream.after_startup(wiring.after_startup)
    stream.on_shutdown(wiring.on_shutdown)
    stream.after_shutdown(wiring.after_shutdown)


def _transport_for(broker: Any) -> FastStreamTransport:
    for transport_module, transport_name, broker_module, broker_name in _TRANSPORTS:
        try:
            broker_type = getattr(importlib.import_module(broker_module), broker_name)
        except ImportError:
            continue
        if isinstance(broker, broker_type):
            made: FastStreamTransport = getattr(
                importlib.import_module(transport_module), transport_name
            )(broker=broker)
            return made
    raise ValueError(
        f"dockyard has no transport for a {type(broker).__name__}: endpoints run on RabbitMQ, "
        "NATS, Redis and Kafka brokers"
    )


class _Wiring:
    """One FastStream app's dockyard: hooks, endpoint subscribers and what is in flight."""

    __slots__ = (
        "_app",
        "_background",
        "_closing",
        "_consumers",
        "_grace",
        "_health",
        "_idle",
        "_in_flight",
        "_life",
        "_receivers",
        "_services",
        "_stream",
        "_transport",
    )

    def __init__(
        self,
        stream: FastStream,
        app: App,
        transport: FastStreamTransport | None,
        endpoints: tuple[Endpoint, ...],
        background_services: bool,
        grace: float,
    ) -> None:
        self._stream = stream
        self._app = app
        self._transport = transport
        self._background = background_services
        self._grace = grace
        self._life = AsyncExitStack()
        self._services = AsyncExitStack()
        self._consumers: dict[str, Consumer] = {}
        self._closing = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0
        self._health = {endpoint.name: _EndpointHealth(endpoint.name) for endpoint in endpoints}
        self._receivers = [
            (
                endpoint,
                transport.receive(
                    endpoint.destination,
                    endpoint.group,
                    self._handler(endpoint),
                    prefetch=endpoint.concurrency,
                ),
            )
            for endpoint in endpoints
            if transport is not None  # setup_dockyard makes one for endpoints
        ]

    # -- lifespan -------------------------------------------------------------------------

    async def on_startup(self) -> None:
        """Before the broker connects: check, start the app, build consumers, declare groups."""
        self._check()
        app = self._app
        for health in self._health.values():
            health.set(ServiceState.STARTING)
        # what `app.health()` lists: this app's endpoints, once (a restart replaces them)
        mine = set(map(id, self._health.values()))
        app._reporters = [  # noqa: SLF001 -- same package
            *(r for r in app._reporters if id(r) not in mine),  # noqa: SLF001
            *self._health.values(),
        ]
        try:
            await self._life.enter_async_context(serving(app))
            transport = self._transport
            if self._receivers and transport is not None:
                component = app.graph.get(OutboxModule).component
                config = await app.container.get(OutboxConfig, component=component)
                store = await app.container.get(OutboxStore, component=component)
                for endpoint, receiver in self._receivers:
                    self._consumers[endpoint.name] = consumer_of(
                        app, endpoint, transport, config, store
                    )
                    await transport.declare_group(endpoint.destination, endpoint.group)
                    receiver.open()
            self._closing.clear()
        except BaseException:
            await self._life.aclose()  # FastStream runs no shutdown hooks after this
            raise

    async def after_startup(self) -> None:
        """The broker runs: background services may now share it (none start it again)."""
        for health in self._health.values():
            health.set(ServiceState.RUNNING)
        if self._background:
            await self._services.enter_async_context(running_services(self._app, self._grace))

    async def on_shutdown(self) -> None:
        """Before the broker stops: stop background services; retries waiting go back now."""
        self._closing.set()
        for _, receiver in self._receivers:
            receiver.close()
        for health in self._health.values():
            health.set(ServiceState.STOPPED)
        await self._services.aclose()

    async def after_shutdown(self) -> None:
        """After the broker stopped: let in-flight messages finish, then stop the app."""
        try:
            await asyncio.wait_for(self._idle.wait(), self._grace)
        except TimeoutError:
            logger.warning(
                "FastStream app stopped with %d message(s) still being handled after %.0fs",
                self._in_flight,
                self._grace,
            )
        finally:
            self._consumers.clear()
            await self._life.aclose()

    def _check(self) -> None:
        needed = (
            (f"FastStream endpoint `{endpoint.name}`", dependency)
            for endpoint, _ in self._receivers
            for dependency in (OutboxConfig, OutboxStore, Inbox)
        )
        check_injections(self._app, [*needed, *_injections(self._stream)])

    # -- endpoints ------------------------------------------------------------------------

    def _handler(self, endpoint: Endpoint) -> Callable[[Delivery], Any]:
        outage = Outage(endpoint.name, logger)
        health = self._health[endpoint.name]

        async def handle(delivery: Delivery) -> None:
            consumer = self._consumers.get(endpoint.name)
            if consumer is None:  # a message before start-up or after shutdown: not ours yet
                return  # unsettled: back to the broker
            self._in_flight += 1
            self._idle.clear()
            try:
                await self._handle(consumer, delivery, outage, health)
            finally:
                self._in_flight -= 1
                if not self._in_flight:
                    self._idle.set()

        return handle

    async def _handle(
        self, consumer: Consumer, delivery: Delivery, outage: Outage, health: _EndpointHealth
    ) -> None:
        """``Consumer.handle``; through an outage (database or broker down), the same
        delivery again after a backoff, as the worker's supervisor restarts a consumer."""
        failures = 0
        while True:
            try:
                await consumer.handle(delivery)
            except Exception as exc:
                if not is_outage(exc):
                    raise  # a bug: the message goes back, FastStream logs the error
                failures += 1
                outage.down(describe(exc))
                health.set(ServiceState.DEGRADED, outage.reason)
                try:
                    await asyncio.wait_for(self._closing.wait(), backoff(failures, _MAX_BACKOFF))
                except TimeoutError:
                    continue
                return  # shutting down: unsettled, back to the broker
            if outage.up():
                health.set(ServiceState.RUNNING)
            return


class _EndpointHealth:
    """What ``app.health()`` says of one endpoint: ``starting`` until the broker runs, then
    ``running``, ``degraded`` (with the reason) while an outage is waited out, ``stopped``
    from shutdown on. FastStream runs the subscriber; nothing restarts it, so no ``failed``."""

    __slots__ = ("_health",)

    def __init__(self, name: str) -> None:
        self._health = ServiceHealth(name, ServiceState.STARTING, None, time.time())

    def health(self) -> ServiceHealth:
        return self._health

    def set(self, state: ServiceState, reason: str | None = None) -> None:
        if (state, reason) != (self._health.state, self._health.reason):
            self._health = ServiceHealth(self._health.name, state, reason, time.time())


# -- FromDockyard in plain handlers -----------------------------------------------------------


async def _message_scope(
    app: Annotated[Any, Context(_APP_KEY)], message: Annotated[Any, Context("message")]
) -> AsyncIterator[AsyncContainer]:
    """The message's dockyard scope: its exit commits, or rolls back on the handler's error."""
    try:
        async with app.scope({StreamMessage: message}) as scope:
            yield scope
    except ExitError as exc:  # Dishka groups what the scope's finalizers raised
        if len(exc.exceptions) == 1:  # one (a failed commit): raised as the handler's error
            raise exc.exceptions[0] from exc
        raise


@functools.cache
def _resolver(dependency: Any) -> Callable[..., Any]:
    return resolver(dependency, Annotated[AsyncContainer, Depends(_message_scope)])


if TYPE_CHECKING:
    FromDockyard = Annotated[T, "dockyard"]
else:

    class FromDockyard:
        """``FromDockyard[T]``: ``T`` from the message's dockyard scope, in a handler's signature.

        It is a FastStream ``Depends``: every ``FromDockyard`` of one message (in the handler
        and in dependencies of your own) shares one scope, one unit of work, committed when
        the handler returns (before the message is acknowledged) and rolled back when it
        raises. The scope's context holds the FastStream ``StreamMessage``.
        """

        __slots__ = ()

        def __class_getitem__(cls, dependency: Any) -> Any:
            return Annotated[dependency, *_UNCHECKED, Depends(_resolver(dependency))]


def _unchecked() -> tuple[object, ...]:
    """Markers telling FastDepends not to validate an injected value: what the container gives
    is of the declared type, and ports such as ``ISender`` are protocols pydantic cannot check."""
    try:
        from pydantic import SkipValidation
    except ImportError:  # FastDepends without pydantic validates nothing
        return ()
    return (SkipValidation(),)  # type: ignore[type-arg] # the marker; typed as an alias


_UNCHECKED = _unchecked()


def _injections(stream: FastStream) -> Iterator[tuple[str, Any]]:
    """``(where, T)`` for every ``FromDockyard[T]`` in the handlers of ``stream``'s brokers."""
    for broker in stream.brokers:
        for subscriber in broker.subscribers:
            for call in subscriber.calls:
                original = getattr(call.handler, "_original_call", None)  # the user's function
                if original is None:  # a FastStream that keeps it elsewhere: nothing to check
                    continue
                function = inspect.unwrap(original)
                where = f"handler `{getattr(function, '__qualname__', function)}`"
                for dependency in _injected(function, set()):
                    yield where, dependency


def _injected(function: Any, seen: set[int]) -> Iterator[Any]:
    if id(function) in seen:
        return
    seen.add(id(function))
    dependency = getattr(function, "__dockyard_dependency__", _MISSING)
    if dependency is not _MISSING:
        yield dependency
        return
    try:
        hints = get_type_hints(function, include_extras=True)
    except Exception:  # noqa: BLE001 - hints FastStream itself will report, or none
        return
    for hint in hints.values():
        if get_origin(hint) is not Annotated:
            continue
        for marker in get_args(hint)[1:]:
            inner = getattr(marker, "dependency", None)
            if inner is not None and callable(inner):
                yield from _injected(inner, seen)


_MISSING = object()
