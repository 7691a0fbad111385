"""The relay's publish spans: one per message, the child of its row's trace context, its own
context in the headers it publishes; a failed publish fails its span and is counted."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import cast

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from dockyard.outbox import OutboxMessage, OutboxRelay, RelaySettings
from dockyard.outbox.memory import InMemoryOutboxStore
from dockyard.retry import RetryPolicy
from dockyard.telemetry import Instruments
from dockyard.transport import BatchPublishError, Transport, TransportMessage
from otel_sdk import Otel, otel_sdk

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def otel() -> Iterator[Otel]:
    yield from otel_sdk()


class OneByOne:
    """The ``Transport`` port's ``publish`` only; refuses ``m-1``."""

    messaging_system = "rabbitmq"

    def __init__(self) -> None:
        self.sent: list[TransportMessage] = []

    async def publish(self, message: TransportMessage, /) -> None:
        if message.message_id == "m-1":
            raise ConnectionError("broker refused m-1")
        self.sent.append(message)


class Batching(OneByOne):
    async def publish_many(self, messages: Sequence[TransportMessage], /) -> None:
        failed: dict[str, BaseException] = {}
        for message in messages:
            try:
                await self.publish(message)
            except ConnectionError as exc:
                failed[message.message_id] = exc
        if failed:
            raise BatchPublishError("Batching", failed)


def rows() -> InMemoryOutboxStore:
    store = InMemoryOutboxStore()
    now = time.time()
    store.append(
        [
            OutboxMessage(
                f"m-{n}",
                "orders",
                "Placed",
                b"{}",
                headers={"traceparent": PARENT, "correlation-id": "c-1"},
                created_at=now,
                next_attempt_at=now,
            )
            for n in range(2)
        ]
    )
    return store


@pytest.mark.parametrize("transport", [OneByOne, Batching], ids=["one by one", "batch"])
async def test_each_published_message_has_a_producer_span(
    otel: Otel, transport: type[OneByOne]
) -> None:
    broker = transport()
    settings = RelaySettings(retry=RetryPolicy(max_attempts=3, initial_delay=60))
    port = cast("Transport", broker)  # publishing is all the relay asks of it
    relay = OutboxRelay(rows(), port, settings, instruments=Instruments(otel.telemetry))
    assert await relay.drain() == 1
    spans = {(s.attributes or {})["messaging.message.id"]: s for s in otel.finished()}
    assert set(spans) == {"m-0", "m-1"}
    for span in spans.values():
        assert span.name == "publish orders"
        assert span.kind is SpanKind.PRODUCER
        assert span.context is not None
        assert span.parent is not None
        assert f"{span.context.trace_id:032x}" == PARENT.split("-")[1]  # the row's trace
        assert f"{span.parent.span_id:016x}" == PARENT.split("-")[2]
        assert (span.attributes or {})["messaging.system"] == "rabbitmq"
    ok, failed = spans["m-0"], spans["m-1"]
    assert ok.status.status_code is StatusCode.UNSET
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["dockyard.outcome"] == "retried"
    assert (failed.attributes or {})["error.type"] == "ConnectionError"
    [sent] = broker.sent
    assert ok.context is not None
    assert sent.headers["traceparent"].split("-")[2] == f"{ok.context.span_id:016x}"
    assert sent.headers["correlation-id"] == "c-1"
    counts = {
        a.get("error.type"): p.value for a, p in otel.points("messaging.client.sent.messages")
    }
    assert counts == {None: 1, "ConnectionError": 1}


def test_an_app_without_telemetry_imports_no_opentelemetry() -> None:
    code = """
import asyncio, sys
from dataclasses import dataclass
from dockyard import App, Command, CommandHandler, Event, EventHandler, module

@dataclass
class Ping(Command[int]):
    n: int

@dataclass
class Pinged(Event):
    n: int

class PingHandler(CommandHandler[Ping, int]):
    async def handle(self, request: Ping, /) -> int:
        return request.n

class OnPinged(EventHandler[Pinged]):
    async def handle(self, event: Pinged, /) -> None:
        return None

@module(handlers=[PingHandler, OnPinged])
class Root: ...

async def main() -> None:
    async with App.build(Root) as app:
        assert await app.send(Ping(1)) == 1
        await app.publish(Pinged(1))
        assert [name for name in sys.modules if name.startswith("opentelemetry")] == []

asyncio.run(main())
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
