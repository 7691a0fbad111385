"""An OpenTelemetry SDK of the test's own: in-memory spans and metrics, never the global one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dockyard.telemetry import Telemetry


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    telemetry: Telemetry

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> ReadableSpan:
        found = [s for s in self.finished() if s.name == name]
        assert len(found) == 1, [s.name for s in self.finished()]
        return found[0]

    @staticmethod
    def parent(span: ReadableSpan) -> int | None:
        return span.parent.span_id if span.parent is not None else None

    @staticmethod
    def id_of(span: ReadableSpan) -> int:
        assert span.context is not None
        span_id: int = span.context.span_id
        return span_id

    def points(self, metric: str) -> list[tuple[Mapping[str, Any], Any]]:
        """``(attributes, point)`` of every data point of ``metric`` collected now."""
        data = self.metrics.get_metrics_data()
        found: list[tuple[Mapping[str, Any], Any]] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found.extend((dict(p.attributes or {}), p) for p in item.data.data_points)
        return found


def otel_sdk() -> Iterator[Otel]:
    """For a fixture: ``yield from otel_sdk()``."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(
        tracer_provider=tracer_provider, meter_provider=meter_provider, backlog_interval=0.001
    )
    yield Otel(spans, reader, telemetry)
    tracer_provider.shutdown()
    meter_provider.shutdown()
