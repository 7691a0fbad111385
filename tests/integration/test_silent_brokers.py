"""A broker that accepts connections and never answers: connecting is bounded, nothing leaks.

Seen on the development machine: a RabbitMQ node wedged after many test runs accepted TCP
connections and never sent the AMQP greeting, and every connect hung for ever (a CI run timed
out). A stalled ``FaultProxy`` does not show it: RabbitMQ behind the proxy still closes a
connection that never finished its handshake, and the proxy passes that on. Here the "broker"
is a ``SilentListener`` the test owns, which accepts and never writes a byte.

For each broker transport: every operation that connects (``declare``, ``publish``,
``publish_many``, ``subscribe``) raises ``TransportUnavailableError`` once ``connect_timeout``
has passed; a connect cancelled halfway (a worker stopping) leaves no client task and no
socket behind (aio-pika's robust connection would otherwise go on reconnecting for ever);
and a worker whose relay and consumer start through such a transport degrades (one warning,
backoff) and stops when told to, instead of sitting in ``starting`` for ever.

No server is needed: the listener is local and the broker clients are only installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio
from aio_pika import RobustConnection
from faststream.rabbit import RabbitBroker

from dockyard.app import App
from dockyard.consumer import ConsumerModule, listen
from dockyard.exceptions import TransportUnavailableError
from dockyard.messaging import Event, EventHandler
from dockyard.modules import ServiceState, module
from dockyard.outbox import OutboxModule, route
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.transport import TransportMessage
from dockyard.transport import nats as nats_module
from dockyard.transport import rabbit as rabbit_module
from dockyard.transport._faststream import FastStreamTransport
from dockyard.transport.nats import NatsTransport
from dockyard.transport.rabbit import RabbitTransport
from dockyard.transport.redis import RedisTransport
from faults import SilentListener
from integration._apps.worker_process import wait_until

CONNECT_TIMEOUT = 0.5
_WAIT = 60.0
"""Generous: a bound that works ends in ``CONNECT_TIMEOUT``; a hang ends the test here."""
_CLIENTS = ("aio_pika", "aiormq", "nats", "redis", "faststream")


def rabbit(port: int, timeout: float = CONNECT_TIMEOUT) -> RabbitTransport:
    return RabbitTransport(f"amqp://guest:guest@127.0.0.1:{port}/", connect_timeout=timeout)


def nats(port: int, timeout: float = CONNECT_TIMEOUT) -> NatsTransport:
    return NatsTransport(f"nats://127.0.0.1:{port}", connect_timeout=timeout)


def redis(port: int, timeout: float = CONNECT_TIMEOUT) -> RedisTransport:
    return RedisTransport(f"redis://127.0.0.1:{port}", connect_timeout=timeout)


TRANSPORTS = [
    pytest.param(rabbit, id="rabbit"),
    pytest.param(nats, id="nats"),
    pytest.param(redis, id="redis"),
]
Factory = Callable[[int, float], FastStreamTransport]


def client_tasks() -> list[asyncio.Task[object]]:
    """Tasks running code of a broker client (aio-pika's reconnect loop, nats-py's, ...)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = getattr(code, "co_filename", "")
        if any(f"{os.sep}{client}{os.sep}" in filename for client in _CLIENTS):
            found.append(task)
    return found


@pytest_asyncio.fixture(autouse=True)
async def _close_what_a_test_left() -> AsyncIterator[None]:
    """After a failed test, close the robust connections aio-pika left reconnecting: their
    task survives cancellation, so the event loop of the test could never close otherwise."""
    yield
    for task in client_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        owner = frame.f_locals.get("self") if frame is not None else None
        if isinstance(owner, RobustConnection):
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(owner.close(), _WAIT)


async def nothing_left_behind(silent: SilentListener) -> None:
    """No client task runs any more and the client closed every connection it opened."""
    await wait_until(lambda: not client_tasks(), f"no client tasks: {client_tasks()}", _WAIT)
    await wait_until(lambda: silent.open == 0, "the client to close its sockets", _WAIT)


def ping(n: int = 0) -> TransportMessage:
    return TransportMessage(f"m-{n}", "pings", "Ping", b"{}")


async def unavailable(operation: object) -> TransportUnavailableError:
    assert asyncio.iscoroutine(operation)
    with pytest.raises(TransportUnavailableError) as raised:
        await asyncio.wait_for(operation, _WAIT)  # a hang fails here, not in pytest-timeout
    return raised.value


@pytest.mark.parametrize("factory", TRANSPORTS)
async def test_connecting_to_a_silent_broker_is_unavailable_after_connect_timeout(
    factory: Factory,
) -> None:
    async with SilentListener() as silent:
        transport = factory(silent.port, CONNECT_TIMEOUT)
        try:
            error = await unavailable(transport.declare("pings", "g"))
            assert silent.accepted >= 1  # it did connect: the silence is what is bounded
            assert f"no answer within {CONNECT_TIMEOUT:g}s" in error.reason, error
            assert error.transport == transport.scheme
            await unavailable(transport.publish(ping()))
            await unavailable(transport.publish_many([ping(1), ping(2)]))

            async def subscribe() -> None:
                async with transport.subscribe("pings", "g"):
                    raise AssertionError("subscribed to a silent broker")

            await unavailable(subscribe())
            await nothing_left_behind(silent)
        finally:
            await asyncio.wait_for(transport.close(), _WAIT)
        await nothing_left_behind(silent)


@pytest.mark.parametrize("factory", TRANSPORTS)
async def test_a_connect_cancelled_halfway_leaves_no_task_and_no_socket(factory: Factory) -> None:
    async with SilentListener() as silent:
        transport = factory(silent.port, _WAIT * 10)  # the connect is cancelled long before
        connecting = asyncio.ensure_future(transport.declare("pings", "g"))
        try:
            await wait_until(lambda: silent.accepted >= 1, "the client to connect", _WAIT)
            connecting.cancel()  # a worker stopping while its services connect
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(connecting, _WAIT)
            await nothing_left_behind(silent)
        finally:
            connecting.cancel()
            await asyncio.wait_for(transport.close(), _WAIT)


async def test_a_rabbit_broker_of_your_own_without_a_timeout_is_bounded_too() -> None:
    async with SilentListener() as silent:
        # FastStream's default: no timeout, so aio-pika alone would wait for ever.
        broker = RabbitBroker(f"amqp://guest:guest@127.0.0.1:{silent.port}/", logger=None)
        transport = RabbitTransport(broker=broker, connect_timeout=CONNECT_TIMEOUT)
        try:
            error = await unavailable(transport.declare("pings", "g"))
            assert f"no answer within {CONNECT_TIMEOUT:g}s" in error.reason, error
            await nothing_left_behind(silent)
        finally:
            await asyncio.wait_for(transport.close(), _WAIT)


async def test_a_rabbit_node_that_greets_and_then_falls_silent_is_unavailable_too() -> None:
    # The handshake and FastStream's first channel succeed; its reply queue's declare never
    # gets an answer, after FastStream took the connection as its own.
    async with SilentListener(amqp_handshake=True) as silent:
        transport = rabbit(silent.port)
        try:
            for _ in range(2):  # the second connect starts afresh, not on the closed connection
                error = await unavailable(transport.declare("pings", "g"))
                assert f"no answer within {CONNECT_TIMEOUT:g}s" in error.reason, error
                assert transport.broker._connection is None  # FastStream forgot it
                await nothing_left_behind(silent)
            assert silent.accepted == 2
        finally:
            await asyncio.wait_for(transport.close(), _WAIT)


@pytest.mark.parametrize(
    ("factory", "module"),
    [
        pytest.param(rabbit, rabbit_module, id="rabbit"),
        pytest.param(nats, nats_module, id="nats"),
    ],
)
async def test_without_the_borrowed_hook_connecting_is_bounded_by_the_client_and_said_once(
    factory: Factory,
    module: object,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A FastStream release the transport does not know: it cannot reach the client's
    # connection to close it, so the client's own bound (the same connect_timeout) ends the
    # attempt first, and nothing is left behind either.
    monkeypatch.setattr(module, "release", lambda distribution: (0, 8, 0))
    caplog.set_level(logging.WARNING, logger="dockyard.transport")
    async with SilentListener() as silent:
        transport = factory(silent.port, CONNECT_TIMEOUT)
        try:
            for _ in range(2):
                await unavailable(transport.declare("pings", "g"))
                await nothing_left_behind(silent)
        finally:
            await asyncio.wait_for(transport.close(), _WAIT)
    warnings = [r.getMessage() for r in caplog.records if r.name == "dockyard.transport"]
    assert len(warnings) == 1, warnings
    assert "given up after connect_timeout" in warnings[0]
    assert (
        "faststream is 0.8.0; the connect clean-up knows 0.6 up to (not including) 0.8"
    ) in warnings[0]


@dataclass(frozen=True, slots=True)
class Ping(Event):
    n: int


class OnPing(EventHandler[Ping]):  # the consumer's handler: never reached here
    async def handle(self, event: Ping, /) -> None:
        del event


@pytest.mark.parametrize("factory", TRANSPORTS)
async def test_a_worker_on_a_silent_broker_degrades_and_stops_when_told(
    factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dockyard")
    async with SilentListener() as silent:
        transport = factory(silent.port, CONNECT_TIMEOUT)

        @module(
            handlers=[OnPing],
            imports=[
                OutboxModule.register(
                    transport=transport,
                    backend=InMemoryOutboxBackend(),
                    routes=[route(Ping).to("pings-out")],  # not to what it consumes
                ),
                ConsumerModule.register(endpoints=[listen("pings", group="g")]),
            ],
        )
        class Worker: ...

        app = App.build(Worker)
        services = ("outbox-relay", "consumer:pings:g")

        def degraded() -> bool:
            states = {s.name: s.state for s in app.health().services}
            return all(states.get(name) is ServiceState.DEGRADED for name in services)

        stop = asyncio.Event()
        async with app:
            await app.publish(Ping(1))  # the relay has something to publish
            worker = asyncio.create_task(app.run_worker(stop=stop, max_backoff=0.5))
            try:
                await wait_until(degraded, "the relay and the consumer degraded", _WAIT)
                reasons = {s.name: s.reason or "" for s in app.health().services}
                for name in services:
                    assert "unavailable" in reasons[name], reasons
                assert not worker.done()  # an outage is a state, not a crash
            finally:
                stop.set()
                await asyncio.wait_for(worker, _WAIT)
        await nothing_left_behind(silent)
    went = [r.getMessage() for r in caplog.records if "degraded" in r.getMessage()]
    assert sorted(m.split(":")[0] for m in went) == ["consumer", "outbox-relay"], went
