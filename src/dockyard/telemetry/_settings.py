"""``Telemetry``: what ``App.build(Root, telemetry=Telemetry(...))`` traces and measures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Telemetry"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """OpenTelemetry traces and metrics for one app (needs ``pip install 'dockyard[otel]'``).

    Given to ``App.build``, it is compiled into the dispatch plans: an app built without it
    (or with ``enabled=False``) dispatches on exactly the paths it has without telemetry.

    Attributes:
        enabled: ``False`` builds the app as if no ``Telemetry`` was given (e.g. from an
            environment setting) and needs no OpenTelemetry at all.
        tracer_provider: Where spans go; the global one (``opentelemetry.trace``) by default,
            looked up when each span starts, so one set after the app is built counts.
        meter_provider: Where metrics go; the global one by default.
        propagator: Writes and reads the trace context in message headers; the global one
            (W3C ``traceparent`` and baggage unless configured) by default.
        traces: Make spans.
        metrics: Record metrics.
        backlog_interval: Seconds between two reads of the outbox's counts by a relay, for
            the ``dockyard.outbox.messages`` gauge (one query each time).
    """

    enabled: bool = True
    tracer_provider: Any = None
    meter_provider: Any = None
    propagator: Any = None
    traces: bool = True
    metrics: bool = True
    backlog_interval: float = 15.0

    def __post_init__(self) -> None:
        if not self.backlog_interval > 0:
            msg = f"Telemetry backlog_interval must be positive, got {self.backlog_interval}"
            raise ValueError(msg)

    @property
    def active(self) -> bool:
        """Whether anything is traced or measured."""
        return self.enabled and (self.traces or self.metrics)
