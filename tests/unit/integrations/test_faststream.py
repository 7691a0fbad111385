"""dockyard.integrations.faststream without a server: FastStream's in-memory test broker.

The version gate and the missing extra, the lifespan, ``FromDockyard`` scopes and the start-up
checks. Endpoints against real brokers: ``tests/integration/test_faststream.py``.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Annotated, ClassVar

import pytest
from faststream import Depends, FastStream, TestApp
from faststream.rabbit import RabbitBroker, TestRabbitBroker

from dockyard import (
    App,
    Command,
    CommandHandler,
    Event,
    EventHandler,
    ISender,
    contextual,
    module,
    scoped,
)
from dockyard.consumer import ErrorPolicies, dead_letter, listen
from dockyard.di import Lifetime
from dockyard.exceptions import (
    MissingExtraError,
    MissingProviderError,
    ModuleConfigurationError,
    NotExportedError,
    UnsupportedReleaseError,
)
from dockyard.integrations import faststream as integration
from dockyard.integrations.faststream import (
    SUPPORTED_FASTSTREAM,
    FromDockyard,
    check_release,
    setup_dockyard,
)
from dockyard.outbox import DeadLetters, OutboxModule
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.serialization import Serializer
from dockyard.transport import TransportMessage
from dockyard.transport.rabbit import RabbitTransport

# -- the supported releases ------------------------------------------------------------------


def test_the_supported_releases_are_the_ones_the_extras_install() -> None:
    assert SUPPORTED_FASTSTREAM == ((0, 6), (0, 8))  # pyproject: faststream>=0.6,<0.8
    for supported in [(0, 6), (0, 6, 0), (0, 7, 8), (0, 7, 99)]:
        check_release(supported)


@pytest.mark.parametrize(
    ("installed", "shown"),
    [((0, 8, 0), "0.8.0"), ((0, 5, 9), "0.5.9"), ((1, 0), "1.0"), ((), "an unknown release")],
)
def test_an_unsupported_release_is_refused_naming_the_supported_ones(
    installed: tuple[int, ...], shown: str
) -> None:
    with pytest.raises(UnsupportedReleaseError) as raised:
        check_release(installed)
    assert str(raised.value) == (
        f"dockyard.integrations.faststream supports faststream 0.6 and 0.7 (>=0.6,<0.8), not "
        f"{shown}. Hint: pip install 'dockyard[rabbit]' installs a supported release (or pin "
        "faststream to one)"
    )


def test_importing_with_an_unsupported_faststream_fails_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = metadata.version

    def version(distribution: str) -> str:
        return "0.8.1" if distribution == "faststream" else real(distribution)

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.delitem(sys.modules, integration.__name__)
    with pytest.raises(UnsupportedReleaseError, match=r"supports faststream 0\.6 and 0\.7"):
        importlib.import_module(integration.__name__)


def test_importing_without_faststream_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faststream", None)  # what an uninstalled package does
    monkeypatch.delitem(sys.modules, integration.__name__)
    with pytest.raises(MissingExtraError) as raised:
        importlib.import_module(integration.__name__)
    assert "pip install 'dockyard[rabbit]'" in str(raised.value)
    assert "FastStream" in str(raised.value)


# -- an app and a FastStream service ---------------------------------------------------------


@dataclass
class Probe:
    started: int = 0
    stopped: int = 0
    scopes: list[tuple[Tag, Tag]] = field(default_factory=list)
    closed: list[BaseException | None] = field(default_factory=list)


class Tag:
    """One per scope."""


async def tag(probe: Probe) -> AsyncGenerator[Tag, BaseException | None]:
    error = yield Tag()  # Dishka sends a finalizer the scope's exception (a unit of work's way)
    probe.closed.append(error)


class Private:
    """Provided, never exported: a handler must not get it."""


@module(providers=[scoped(Private)])
class Internals: ...


@dataclass(frozen=True, slots=True)
class Greet(Command[str]):
    name: str


class GreetHandler(CommandHandler[Greet, str]):
    async def handle(self, command: Greet, /) -> str:
        return f"Hello, {command.name}!"


def build(probe: Probe) -> App:
    @module(
        providers=[contextual(Probe, lifetime=Lifetime.SINGLETON), scoped(tag)],
        exports=[Tag],
        handlers=[GreetHandler],
        imports=[Internals],
    )
    class Greetings: ...

    @asynccontextmanager
    async def counted(app: App) -> AsyncIterator[None]:
        probe.started += 1
        yield
        probe.stopped += 1

    return App.build(Greetings, context={Probe: probe}, lifespan=[counted])


def service(probe: Probe) -> tuple[App, RabbitBroker, FastStream]:
    """A FastStream app on an (in-memory tested) RabbitBroker, with dockyard attached."""
    app = build(probe)
    broker = RabbitBroker(logger=None)
    stream = FastStream(broker, logger=None)
    setup_dockyard(stream, app)
    return app, broker, stream


def started(app: App) -> bool:  # a call, so mypy does not narrow `app.is_started`
    return app.is_started


async def test_the_app_starts_before_the_broker_and_stops_after_it_once() -> None:
    probe = Probe()
    app, broker, stream = service(probe)
    seen: list[tuple[bool, int]] = []

    @stream.after_startup
    async def after_startup() -> None:
        seen.append((app.is_started, probe.started))

    async with TestRabbitBroker(broker), TestApp(stream):
        assert (probe.started, probe.stopped) == (1, 0)
    assert (probe.started, probe.stopped) == (1, 1)
    assert seen == [(True, 1)]
    assert not started(app)
    async with TestRabbitBroker(broker), TestApp(stream):  # and again, on a fresh container
        assert started(app)
    assert (probe.started, probe.stopped) == (2, 2)


async def test_an_app_its_owner_started_is_left_to_them() -> None:
    probe = Probe()
    app, broker, stream = service(probe)
    async with app:
        async with TestRabbitBroker(broker), TestApp(stream):
            pass
        assert app.is_started
    assert (probe.started, probe.stopped) == (1, 1)


async def test_a_plain_handler_gets_dockyard_providers_from_one_scope_per_message() -> None:
    probe = Probe()
    _, broker, stream = service(probe)
    answers: list[str] = []

    async def tagged(first: FromDockyard[Tag]) -> Tag:
        return first

    @broker.subscriber("greetings")
    async def greet(
        name: str,
        sender: FromDockyard[ISender],
        second: FromDockyard[Tag],
        first: Annotated[Tag, Depends(tagged)],
    ) -> None:
        probe.scopes.append((first, second))
        if name == "nobody":
            raise ValueError("nobody to greet")
        answers.append(await sender.send(Greet(name)))

    async with TestRabbitBroker(broker) as test_broker, TestApp(stream):
        await test_broker.publish("Ada", "greetings")
        await test_broker.publish("Grace", "greetings")
        with pytest.raises(ValueError, match="nobody to greet"):
            await test_broker.publish("nobody", "greetings")
    assert answers == ["Hello, Ada!", "Hello, Grace!"]
    assert [first is second for first, second in probe.scopes] == [True, True, True]
    assert len({id(first) for first, _ in probe.scopes}) == 3  # a scope per message
    assert [repr(error) for error in probe.closed] == [
        "None",
        "None",
        "ValueError('nobody to greet')",
    ]


async def test_start_up_reports_every_injection_the_root_module_cannot_see() -> None:
    probe = Probe()
    app = build(probe)
    broker = RabbitBroker(logger=None)
    stream = FastStream(broker, logger=None)
    setup_dockyard(stream, app, endpoints=[listen("orders", group="billing")])

    @broker.subscriber("secrets")
    async def peek(body: str, private: FromDockyard[Private]) -> None:
        del body, private

    with pytest.raises(ModuleConfigurationError) as raised:
        async with TestRabbitBroker(broker), TestApp(stream):
            pass
    problems = raised.value.problems
    assert any(isinstance(p, NotExportedError) and p.dependency is Private for p in problems)
    missing = {p.dependency for p in problems if isinstance(p, MissingProviderError)}
    assert {"OutboxStore", "OutboxConfig", "Inbox"} <= {getattr(t, "__name__", t) for t in missing}
    assert "consumer:orders:billing" in str(raised.value)
    assert "peek" in str(raised.value)
    assert not app.is_started
    assert probe.started == 0


def test_setting_up_checks_the_broker_the_transport_and_the_endpoints() -> None:
    app = build(Probe())
    with pytest.raises(ValueError, match="needs a FastStream app with a broker"):
        setup_dockyard(FastStream(logger=None), app)
    stream = FastStream(RabbitBroker(logger=None), logger=None)
    with pytest.raises(ValueError, match="not one of this FastStream app's"):
        setup_dockyard(stream, app, transport=RabbitTransport(broker=RabbitBroker(logger=None)))
    twice = [listen("orders", group="billing"), listen("orders", group="billing")]
    with pytest.raises(ValueError, match="lists an endpoint twice: consumer:orders:billing"):
        setup_dockyard(stream, app, endpoints=twice)


# -- an endpoint through an outage ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Paid(Event):
    order_id: str


class RecordPayment(EventHandler[Paid]):
    """Meets a database that refuses connections twice, then works."""

    outages = 2
    runs: ClassVar[list[str]] = []
    app: ClassVar[App | None] = None
    seen: ClassVar[list[tuple[str, str, str | None]]] = []  # app.health() at each run

    async def handle(self, event: Paid, /) -> None:
        RecordPayment.runs.append(event.order_id)
        assert RecordPayment.app is not None
        RecordPayment.seen.extend(_states(RecordPayment.app))
        if RecordPayment.outages:
            RecordPayment.outages -= 1
            raise ConnectionRefusedError("the database is down")


async def test_an_outage_is_waited_out_with_the_same_delivery_and_no_attempt_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "dockyard.consumer")
    broker = RabbitBroker(logger=None)
    transport = RabbitTransport(broker=broker)

    outbox = OutboxModule.register(transport=transport, backend=InMemoryOutboxBackend())

    @module(imports=[outbox], handlers=[RecordPayment])
    class Payments: ...

    app = RecordPayment.app = App.build(Payments)
    stream = FastStream(broker, logger=None)
    # one delivery only: an attempt counted against the message would make it a dead letter
    policies = ErrorPolicies(default=dead_letter())
    setup_dockyard(
        stream,
        app,
        endpoints=[listen("paid", group="books", policies=policies)],
        transport=transport,
    )
    encoded = Serializer().serialize(Paid("o-1"))
    assert _states(app) == []  # not started
    async with TestRabbitBroker(broker, connect_only=True), TestApp(stream):
        assert _states(app) == [("consumer:paid:books", "running", None)]
        await transport.publish(TransportMessage("m-1", "paid", encoded.type_name, encoded.data))
        assert RecordPayment.runs == ["o-1", "o-1", "o-1"]
        assert await (await app.get(DeadLetters)).list() == []
        assert _states(app) == [("consumer:paid:books", "running", None)]  # recovered
    down = ("consumer:paid:books", "degraded", "ConnectionRefusedError: the database is down")
    assert RecordPayment.seen == [("consumer:paid:books", "running", None), down, down]
    assert _states(app) == [("consumer:paid:books", "stopped", None)]
    logged = [r.getMessage() for r in caplog.records if r.name == "dockyard.consumer"]
    assert len(logged) == 2  # once when it went down, once when it came back
    assert logged[0] == (
        "consumer:paid:books: degraded, retrying with backoff: "
        "ConnectionRefusedError: the database is down"
    )
    assert logged[1].startswith("consumer:paid:books: recovered after ")


def _states(app: App) -> list[tuple[str, str, str | None]]:
    """``app.health()``'s services as ``(name, state, reason)``."""
    return [(s.name, s.state.value, s.reason) for s in app.health().services]
