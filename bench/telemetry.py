"""Telemetry: what ``App.build(..., telemetry=Telemetry(...))`` costs on send and publish.

The app is ``bench.messaging``'s (a handler with one scoped dependency; an event with 3
handlers), built five ways, in one process run against Dishka alone:

- ``off``: no ``Telemetry`` — the plans an app has without telemetry (the target: this must
  not move against ``bench.messaging``'s ``dockyard`` row);
- ``disabled``: ``Telemetry(enabled=False)`` — must be the same plans, so the same figure;
- ``enabled, no SDK``: ``Telemetry()`` with only ``opentelemetry-api`` configured (no
  tracer or meter provider set: the API's no-op spans and instruments) — the traced plans'
  own cost;
- ``enabled, SDK``: ``Telemetry`` with an SDK ``TracerProvider`` (always sampled, the usual
  ``BatchSpanProcessor``, into an exporter that drops the spans) and a ``MeterProvider``
  (an in-memory reader, never collected here) — spans and measurements really made;
- ``enabled, SDK, traces only``: the same without metrics;

and a floor for the traced rows: Dishka alone plus the spans the traced dispatch makes (2 for
a send, 4 for a publish to 3 handlers), started, made current and ended by hand on the same
SDK pipeline, with the same attributes — what any tracing of this work costs at least.

Run: ``python -m bench telemetry`` (needs the ``otel`` extra and ``opentelemetry-sdk``);
``DOCKYARD_BENCH_ROUNDS`` (default 7) sets the rounds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from opentelemetry import context, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench._harness import Contender, Scenario, print_table, run_async
from bench.messaging import EVENT_HANDLERS, Add, Added, AddHandler, BenchModule, _dishka, _loop
from dockyard import App
from dockyard.telemetry import Telemetry

ROUNDS = int(os.environ.get("DOCKYARD_BENCH_ROUNDS", "7"))
N = 20_000


class _Dropped(SpanExporter):
    """Takes every span and keeps none: the cost of making spans, not of shipping them."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _sdk(*, metrics: bool) -> Telemetry:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(_Dropped()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return Telemetry(
        tracer_provider=tracer_provider, meter_provider=meter_provider, metrics=metrics
    )


def _spans(telemetry: Telemetry, names: Sequence[str]) -> Any:
    """Start, make current and end ``names`` nested, as the traced plans do."""
    tracer = telemetry.tracer_provider.get_tracer("bench")
    outer = {
        "messaging.system": "dockyard",
        "messaging.operation.name": "send",
        "messaging.destination.name": "Add",
    }
    inner = {**outer, "messaging.operation.type": "process", "dockyard.handler": "AddHandler"}

    def run() -> None:
        span = tracer.start_span(names[0], attributes=outer)
        token = context.attach(trace.set_span_in_context(span))
        for name in names[1:]:
            child = tracer.start_span(name, attributes=inner)
            child_token = context.attach(trace.set_span_in_context(child))
            context.detach(child_token)
            child.end()
        context.detach(token)
        span.end()

    return run


def _apps() -> dict[str, tuple[App, str]]:
    return {
        "off": (App.build(BenchModule), "no Telemetry"),
        "disabled": (
            App.build(BenchModule, telemetry=Telemetry(enabled=False)),
            "Telemetry(enabled=False)",
        ),
        "enabled, no SDK": (
            App.build(BenchModule, telemetry=Telemetry()),
            "API only: no-op spans and instruments",
        ),
        "enabled, SDK": (
            App.build(BenchModule, telemetry=_sdk(metrics=True)),
            "2 spans/send, 4/publish; durations recorded",
        ),
        "enabled, SDK, traces only": (
            App.build(BenchModule, telemetry=_sdk(metrics=False)),
            "spans, no metrics",
        ),
    }


async def bench_send(apps: dict[str, tuple[App, str]]) -> None:
    container = _dishka()

    async def dishka_send(n: int) -> None:
        for _ in range(n):
            async with container() as scope:
                handler = await scope.get(AddHandler)
                await handler.handle(Add(amount=1))

    spans = _spans(_sdk(metrics=False), ["send Add", "handle Add"])

    async def floor_send(n: int) -> None:
        for _ in range(n):
            async with container() as scope:
                spans()
                handler = await scope.get(AddHandler)
                await handler.handle(Add(amount=1))

    contenders = [Contender("dishka alone", dishka_send, "open scope + get handler + handle")]
    for name, (app, note) in apps.items():
        contenders.append(Contender(name, _loop(_sender(app)), note))
    contenders.append(Contender("dishka + 2 SDK spans", floor_send, "the traced rows' floor"))
    results = await run_async(contenders, n=N, rounds=ROUNDS)
    scenario = Scenario(
        "telemetry: send a command, new scope",
        baseline="dishka alone",
        target="off and disabled as bench.messaging's dockyard row (≤ 1.25× dishka alone)",
    )
    print_table(scenario, results)
    await container.close()


async def bench_publish(apps: dict[str, tuple[App, str]]) -> None:
    container = _dishka()

    async def dishka_publish(n: int) -> None:
        event = Added(amount=1)
        for _ in range(n):
            async with container() as scope:
                for handler_type in EVENT_HANDLERS:
                    handler = await scope.get(handler_type)
                    await handler.handle(event)

    spans = _spans(_sdk(metrics=False), ["publish Added", "handle", "handle", "handle"])

    async def floor_publish(n: int) -> None:
        event = Added(amount=1)
        for _ in range(n):
            async with container() as scope:
                spans()
                for handler_type in EVENT_HANDLERS:
                    handler = await scope.get(handler_type)
                    await handler.handle(event)

    contenders = [Contender("dishka alone", dishka_publish, "open scope + 3 handlers")]
    for name, (app, note) in apps.items():
        contenders.append(Contender(name, _loop(_publisher(app)), note))
    contenders.append(Contender("dishka + 4 SDK spans", floor_publish, "the traced rows' floor"))
    results = await run_async(contenders, n=N // 2, rounds=ROUNDS)
    scenario = Scenario(
        "telemetry: publish 1 event to 3 handlers, new scope",
        baseline="dishka alone",
        target="off and disabled ≤ 1.25× dishka alone",
    )
    print_table(scenario, results)
    await container.close()


def _sender(app: App) -> Any:
    return lambda: app.send(Add(amount=1))


def _publisher(app: App) -> Any:
    return lambda: app.publish(Added(amount=1))


async def main() -> None:
    apps = _apps()
    for app, _ in apps.values():
        await app.start()
    try:
        await bench_send(apps)
        await bench_publish(apps)
    finally:
        for app, _ in apps.values():
            await app.stop()
