"""The gate in front of the broker clients' private APIs (``dockyard.transport._borrowed``).

The fast paths are checked against the real client classes installed here: a test fails as
soon as an aiormq or nats-py release moves what ``publish_many`` uses, before any user's
relay meets it. The fallbacks themselves are exercised against the real servers in
``tests/integration/test_transport_fallbacks.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import types
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiormq")
pytest.importorskip("nats")

from faststream.kafka import TestKafkaBroker
from faststream.nats import NatsBroker, TestNatsBroker
from faststream.rabbit import RabbitBroker, TestRabbitBroker
from faststream.redis import TestRedisBroker
from nats.aio.client import Client

import dockyard.transport.nats as nats_transport
import dockyard.transport.rabbit as rabbit_transport
from dockyard.transport._borrowed import (
    Check,
    chosen,
    coroutine_taking,
    release,
    release_problem,
    shape_problem,
)
from dockyard.transport._faststream import FastStreamTransport
from dockyard.transport.kafka import KafkaTransport
from dockyard.transport.nats import NatsTransport, _nats_problem
from dockyard.transport.rabbit import RabbitTransport, _aiormq_problem

SRC = Path(__file__).resolve().parents[3] / "src" / "dockyard"


def test_a_release_is_read_as_numbers() -> None:
    assert release("aiormq")[:1] == (7,)
    assert release("nats-py")[:1] == (2,)
    assert release("no-such-distribution-here") == ()


@pytest.mark.parametrize(
    ("installed", "problem"),
    [
        ((7, 2, 4), None),
        ((7, 9), None),
        ((8, 0, 0), "aiormq is 8.0.0; the fast path knows 7.2 up to (not including) 8"),
        ((7, 1, 9), "aiormq is 7.1.9; the fast path knows 7.2 up to (not including) 8"),
        ((), "aiormq is an unknown release; the fast path knows 7.2 up to (not including) 8"),
    ],
)
def test_a_release_outside_the_known_ones_is_a_problem(
    installed: tuple[int, ...], problem: str | None
) -> None:
    assert release_problem("aiormq", installed, (7, 2), (8,)) == problem


def test_a_shape_names_every_missing_or_different_attribute() -> None:
    target = types.SimpleNamespace(number="1", confirmations={})
    shape: dict[str, Check] = {
        "number": lambda v: isinstance(v, int),
        "confirmations": lambda v: isinstance(v, dict),
        "write_queue": callable,
    }
    assert shape_problem(target, shape) == (
        "types.SimpleNamespace has `number` is str, no `write_queue`"
    )
    target.number, target.write_queue = 1, print
    assert shape_problem(target, shape) is None


def test_a_coroutine_check_binds_the_arguments_it_will_be_called_with() -> None:
    async def send(cmd: bytes, priority: bool = False) -> None: ...

    async def flush(force: bool) -> None: ...

    def sync(cmd: bytes) -> None: ...

    assert coroutine_taking(b"")(send)
    assert not coroutine_taking(b"")(sync)
    assert not coroutine_taking()(flush)  # called with nothing: a required argument breaks it
    assert not coroutine_taking()(None)


async def test_the_installed_aiormq_release_is_one_the_fast_path_knows() -> None:
    async with _aiormq_channel() as channel:
        assert _aiormq_problem(channel) is None


async def test_an_aiormq_channel_without_the_confirmation_table_is_refused() -> None:
    async with _aiormq_channel() as channel:
        del channel.confirmations
        assert _aiormq_problem(channel) == "aiormq.channel.Channel has no `confirmations`"
    async with _aiormq_channel() as channel:
        channel.delivery_tag = None
        problem = _aiormq_problem(channel)
        assert problem == "aiormq.channel.Channel has `delivery_tag` is NoneType"


async def test_an_aiormq_whose_frames_are_built_otherwise_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class ChannelFrame:  # no longer the dataclass ``_write_wave`` builds
        def __init__(self, payload: bytes) -> None:
            self.payload = payload

    monkeypatch.setattr(rabbit_transport, "ChannelFrame", ChannelFrame)
    async with _aiormq_channel() as channel:
        problem = _aiormq_problem(channel)
    assert problem == "aiormq's ChannelFrame is not a dataclass of `payload` and `should_close`"


async def test_an_unknown_aiormq_release_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rabbit_transport, "release", lambda distribution: (8, 0, 0))
    async with _aiormq_channel() as channel:
        problem = _aiormq_problem(channel)
    assert problem == "aiormq is 8.0.0; the fast path knows 7.2 up to (not including) 8"


def test_the_installed_nats_py_client_is_one_the_fast_path_knows() -> None:
    assert _nats_problem(Client()) is None


def test_a_nats_py_client_whose_private_methods_moved_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(Client, "_flush_pending")
    assert _nats_problem(Client()) == "nats.aio.client.Client has no `_flush_pending`"


def test_a_nats_py_client_whose_send_became_synchronous_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def _send_command(self: Client, cmd: bytes, priority: bool = False) -> None: ...

    monkeypatch.setattr(Client, "_send_command", _send_command)
    assert _nats_problem(Client()) == "nats.aio.client.Client has `_send_command` is method"


def test_an_unknown_nats_py_release_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nats_transport, "release", lambda distribution: (3, 0))
    assert _nats_problem(Client()) == (
        "nats-py is 3.0; the fast path knows 2.14 up to (not including) 3"
    )


def test_the_fallback_is_said_as_a_warning_and_the_fast_path_as_information(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="dockyard.transport")
    transport = RabbitTransport()
    assert chosen(transport, "the fast path", None)
    assert not chosen(transport, "the fast path", "aiormq is 8.0.0")
    (info, warning) = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert info == (logging.INFO, "<RabbitTransport>: publish_many uses the fast path")
    assert warning[0] == logging.WARNING
    assert warning[1].startswith(
        "<RabbitTransport>: publish_many publishes each message through the client's public "
        "API instead of the fast path (slower, never wrong) because aiormq is 8.0.0."
    )
    assert "pip install 'dockyard[rabbit]'" in warning[1]


def test_a_publish_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"RabbitTransport\.publish_timeout must be > 0, got 0"):
        RabbitTransport(publish_timeout=0)


@pytest.mark.parametrize("transport_class", [RabbitTransport, NatsTransport, KafkaTransport])
def test_a_connect_timeout_must_be_positive(
    transport_class: Callable[..., FastStreamTransport],
) -> None:
    name = transport_class.__name__
    with pytest.raises(ValueError, match=rf"{name}\.connect_timeout must be > 0, got -1"):
        transport_class(connect_timeout=-1)


def test_the_installed_faststream_lets_a_transport_close_a_connect_it_gave_up() -> None:
    assert rabbit_transport._broker_problem(RabbitBroker()) is None
    assert nats_transport._broker_problem(NatsBroker()) is None


def test_a_rabbit_broker_that_names_its_own_connection_class_is_left_alone() -> None:
    broker = RabbitBroker()
    broker._connection_kwargs["connection_class"] = object
    problem = rabbit_transport._broker_problem(broker)
    assert problem == (
        "faststream.rabbit.broker.broker.RabbitBroker has `_connection_kwargs` is dict"
    )


def test_a_nats_broker_that_connects_otherwise_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = NatsBroker()
    monkeypatch.setattr(broker, "_connect", lambda: None)  # no longer a coroutine function
    problem = nats_transport._broker_problem(broker)
    assert problem == "faststream.nats.broker.broker.NatsBroker has `_connect` is function"


@pytest.mark.parametrize(
    ("module", "broker"), [(rabbit_transport, RabbitBroker), (nats_transport, NatsBroker)]
)
def test_an_unknown_faststream_release_is_refused(
    module: types.ModuleType, broker: Callable[[], object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "release", lambda distribution: (0, 8, 0))
    problem = module._broker_problem(broker())
    assert problem == (
        "faststream is 0.8.0; the connect clean-up knows 0.6 up to (not including) 0.8"
    )


@pytest.mark.parametrize(
    ("transport_class", "test_broker"),
    [
        (RabbitTransport, TestRabbitBroker),
        (NatsTransport, TestNatsBroker),
        (KafkaTransport, TestKafkaBroker),
        (_redis := pytest.importorskip("dockyard.transport.redis").RedisTransport, TestRedisBroker),
    ],
)
async def test_a_transport_knows_when_its_broker_is_inside_a_faststream_test_broker(
    transport_class: Callable[[], FastStreamTransport], test_broker: Any
) -> None:
    transport = transport_class()
    assert not transport.in_test_broker()
    async with test_broker(transport.broker):
        assert transport.in_test_broker()
    assert not transport.in_test_broker()


def test_no_module_of_dockyard_imports_unittest() -> None:
    """Production code tells a test broker by what FastStream swaps in, not by mocks."""
    offending = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "import unittest" in (text := path.read_text()) or "from unittest" in text
    ]
    assert offending == []


@contextlib.asynccontextmanager
async def _aiormq_channel() -> AsyncIterator[Any]:
    """A real aiormq channel on no connection (the probe reads attributes, nothing is sent)."""
    import aiormq
    from aiormq.base import FutureStore

    loop = asyncio.get_running_loop()
    store = FutureStore(loop=loop)
    connector: Any = types.SimpleNamespace(
        loop=loop,
        _future_store_child=lambda: store,
        publisher_confirms=True,
        connection_tune=types.SimpleNamespace(frame_max=131072),
        write_queue=asyncio.Queue(),
    )
    try:
        yield aiormq.Channel(connector, 1, publisher_confirms=True)
    finally:
        await store.reject_all(asyncio.CancelledError())  # its reader task
