"""One trace across two processes: a command, its outbox row, the relay, the broker, a
consumer in another process and its handler share one trace id, each span the child of the
one before — over RabbitMQ, NATS JetStream and Redis Streams.

The test's process plays an HTTP request (a span of its own) that sends ``PlaceOrder``; its
relay publishes ``OrderPlaced`` to the broker. The billing process (``_apps/otel_apps.py``)
consumes it and writes its spans to a file, which the test reads.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dockyard.outbox import OutboxStatus, OutboxStore
from dockyard.telemetry import Telemetry
from integration._apps.otel_apps import PlaceOrder, orders_app, transport_for
from integration._apps.services import PYTHON, ROOT, delete_declared, python_env, unique

pytestmark = [pytest.mark.slow]

SYSTEMS = {"rabbit": "rabbitmq", "nats": "nats", "redis": "redis"}


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def start_billing(broker: str, namespace: str, spans_file: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "integration._apps.otel_apps", broker, namespace, str(spans_file)],
        cwd=ROOT,
        env=python_env(),
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM: the worker finishes what it holds and leaves."""
    process.terminate()
    try:
        process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("rabbit", marks=pytest.mark.rabbit),
        pytest.param("nats", marks=pytest.mark.nats),
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
async def test_one_trace_from_the_request_to_the_handler_in_another_process(
    broker: str, tmp_path: Path
) -> None:
    namespace = unique("otel")
    destination = f"{namespace}.orders"
    spans_file = tmp_path / "billing-spans.jsonl"
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    transport = transport_for(broker, f"{namespace}-orders")
    billing: subprocess.Popen[str] | None = None
    try:
        await transport.declare(destination, "billing")  # as a deployment would, first
        billing = start_billing(broker, namespace, spans_file)
        app = orders_app(transport, namespace, Telemetry(tracer_provider=provider))
        tracer = provider.get_tracer("test")
        async with app:
            with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as request:
                await app.send(PlaceOrder("o-1"))
            trace_id = f"{request.get_span_context().trace_id:032x}"
            stopping = asyncio.Event()
            worker = asyncio.create_task(app.run_worker(stop=stopping))
            handled: dict[str, Any] | None = None
            async with asyncio.timeout(60):
                while handled is None:
                    await asyncio.sleep(0.1)
                    assert billing.poll() is None, billing.communicate()[1]
                    handled = next(
                        (
                            s
                            for s in read_spans(spans_file)
                            if s["attributes"].get("dockyard.handler") == "Bill"
                        ),
                        None,
                    )
            stopping.set()
            await worker
            counts = await (await app.get(OutboxStore)).counts()
            assert counts[OutboxStatus.DELIVERED] == 1

        ours = {f"{s.context.span_id:016x}": s for s in exporter.get_finished_spans() if s.context}
        theirs = {s["span_id"]: s for s in read_spans(spans_file)}
        assert {s["trace_id"] for s in theirs.values()} == {trace_id}
        assert {f"{s.context.trace_id:032x}" for s in ours.values() if s.context} == {trace_id}

        names: list[str] = []
        span_id: str | None = handled["span_id"]
        while span_id is not None:  # walk up from the handler, across the process boundary
            if span_id in theirs:
                names.append(theirs[span_id]["name"])
                span_id = theirs[span_id]["parent_id"]
            else:
                span = ours[span_id]
                names.append(span.name)
                span_id = f"{span.parent.span_id:016x}" if span.parent is not None else None
        assert names[::-1] == [
            "POST /orders",
            "send PlaceOrder",
            "handle PlaceOrder",
            "publish OrderPlaced",
            "handle OrderPlaced",
            f"create {destination}",
            f"publish {destination}",  # the relay, in this process
            f"process {destination}",  # the consumer, in the billing process
            "publish OrderPlaced",
            "handle OrderPlaced",
        ]
        process = next(s for s in theirs.values() if s["name"] == f"process {destination}")
        assert process["kind"] == "CONSUMER"
        assert process["attributes"]["messaging.system"] == SYSTEMS[broker]
        assert process["attributes"]["messaging.consumer.group.name"] == "billing"
        relay = next(s for s in ours.values() if s.name == f"publish {destination}")
        assert (relay.attributes or {})["messaging.system"] == SYSTEMS[broker]
        assert relay.kind is SpanKind.PRODUCER
    finally:
        if billing is not None:
            stop(billing)
        await transport.close()
        provider.shutdown()
        await delete_declared(transport)
