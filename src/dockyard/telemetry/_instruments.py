"""``Instruments``: one app's tracer, meter, propagator and metric instruments.

Built once by ``App.build`` from its ``Telemetry``. Without one (or disabled) it holds nothing
and imports nothing: ``active`` is ``False`` and no code path asks it for a span.

Spans are started with ``start_span`` and made current with ``context.attach``, not with
``start_as_current_span``: the context manager adds two generator frames per span
(measured in ``bench/telemetry.py``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from dockyard._type_name import type_name
from dockyard.exceptions import MissingExtraError
from dockyard.telemetry._settings import Telemetry

__all__ = ["Instruments"]

SYSTEM = "messaging.system"
OPERATION_NAME = "messaging.operation.name"
OPERATION_TYPE = "messaging.operation.type"
DESTINATION = "messaging.destination.name"
MESSAGE_ID = "messaging.message.id"
CONVERSATION_ID = "messaging.message.conversation_id"
CONSUMER_GROUP = "messaging.consumer.group.name"
BATCH_COUNT = "messaging.batch.message_count"
ERROR_TYPE = "error.type"
MESSAGE_TYPE = "dockyard.message.type"
HANDLER = "dockyard.handler"
BEHAVIOR = "dockyard.behavior"
OUTCOME = "dockyard.outcome"
PROJECTION = "dockyard.projection"
OUTBOX_TRANSPORT = "dockyard.outbox.transport"
SAGA = "dockyard.saga"
SAGA_STEP = "dockyard.saga.step"

IN_PROCESS = "dockyard"
"""``messaging.system`` of in-process dispatch (send, publish, stream)."""

_SCOPE = "dockyard"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("dockyard")
    except Exception:  # noqa: BLE001 - a version is a nicety, never a reason to fail
        return "0"


class Instruments:
    """The app's telemetry at run time (``App.instruments``; injectable as ``Instruments``).

    Attributes:
        active: Whether the dispatch plans, the outbox, the relay and consumers record
            anything; ``False`` when the app was built without ``Telemetry`` (or disabled).
        tracer: ``None`` unless spans are made.
        settings: The ``Telemetry`` given, or ``None``.
    """

    __slots__ = (
        "_backlog",
        "_consumer_lag",
        "_error",
        "_lag",
        "_oldest_age",
        "_sagas",
        "_span_kind",
        "_trace",
        "active",
        "attach",
        "backlog_read_at",
        "consumed",
        "detach",
        "handler_duration",
        "meter",
        "process_duration",
        "projected",
        "propagator",
        "published",
        "saga_steps",
        "sagas_read_at",
        "set_span",
        "settings",
        "tracer",
    )

    def __init__(self, telemetry: Telemetry | None = None) -> None:
        self.settings = telemetry
        self.active = telemetry is not None and telemetry.active
        self.tracer: Any = None
        self.meter: Any = None
        self.propagator: Any = None
        self.handler_duration: Any = None
        self.process_duration: Any = None
        self.published: Any = None
        self.consumed: Any = None
        self.projected: Any = None
        self.saga_steps: Any = None
        self.backlog_read_at: dict[str | None, float] = {}
        """When each relay loop (by transport name; ``None`` with one transport) last read."""
        self._backlog: dict[str | None, dict[str, int]] = {}
        self._oldest_age = 0.0
        self._sagas: dict[str, int] = {}
        self.sagas_read_at = 0.0
        self._lag: dict[str, int] = {}
        self._consumer_lag: dict[tuple[str, str], int] = {}
        if telemetry is None or not self.active:
            return
        try:
            from opentelemetry import context, propagate, trace
            from opentelemetry.trace import SpanKind, Status, StatusCode
        except ImportError as exc:
            raise MissingExtraError("Telemetry", "opentelemetry-api", "otel") from exc
        self._trace = trace
        self.attach: Any = context.attach
        self.detach: Any = context.detach
        self.set_span: Any = trace.set_span_in_context
        self._span_kind = SpanKind
        self._error = (Status, StatusCode.ERROR)
        self.propagator = telemetry.propagator or propagate.get_global_textmap()
        if telemetry.traces:
            provider = telemetry.tracer_provider
            version = _version()
            self.tracer = (
                provider.get_tracer(_SCOPE, version)
                if provider is not None
                else trace.get_tracer(_SCOPE, version)
            )
        if telemetry.metrics:
            self._make_metrics(telemetry)

    def _make_metrics(self, telemetry: Telemetry) -> None:
        from opentelemetry import metrics

        provider = telemetry.meter_provider
        meter = provider.get_meter(_SCOPE) if provider is not None else metrics.get_meter(_SCOPE)
        self.meter = meter
        self.handler_duration = meter.create_histogram(
            "dockyard.handler.duration",
            unit="s",
            description="How long one handler took, by message type, handler and error type.",
        )
        self.process_duration = meter.create_histogram(
            "messaging.process.duration",
            unit="s",
            description="How long a consumer took over one delivery, ack or retry included.",
        )
        self.published = meter.create_counter(
            "messaging.client.sent.messages",
            unit="{message}",
            description="Messages the outbox relay handed to the broker.",
        )
        self.consumed = meter.create_counter(
            "messaging.client.consumed.messages",
            unit="{message}",
            description="Deliveries a consumer received, by outcome.",
        )
        meter.create_observable_gauge(
            "dockyard.outbox.messages",
            callbacks=[self._observe_backlog],
            unit="{message}",
            description="Outbox rows by status (pending, scheduled, dead), as a relay last read.",
        )
        meter.create_observable_gauge(
            "dockyard.outbox.oldest_pending_age",
            callbacks=[self._observe_oldest],
            unit="s",
            description="Age of the oldest message waiting for the relay (0 when none waits).",
        )
        self.projected = meter.create_counter(
            "dockyard.projection.events",
            unit="{event}",
            description="Events a catch-up projection's runner applied, by projection.",
        )
        meter.create_observable_gauge(
            "dockyard.projection.lag",
            callbacks=[self._observe_lag],
            unit="{event}",
            description="Events after a catch-up projection's checkpoint, as its runner last read.",
        )
        meter.create_observable_gauge(
            "dockyard.consumer.lag",
            callbacks=[self._observe_consumer_lag],
            unit="{message}",
            description="Messages a consumer group has not acknowledged, as its broker counts "
            "them (RabbitMQ queue depth, JetStream pending, Redis lag plus pending).",
        )
        meter.create_observable_gauge(
            "dockyard.saga.instances",
            callbacks=[self._observe_sagas],
            unit="{instance}",
            description="Saga instances by status, as a saga runner last read them.",
        )
        self.saga_steps = meter.create_counter(
            "dockyard.saga.steps",
            unit="{step}",
            description="Saga step attempts, by saga, step, action and outcome.",
        )

    # -- spans ---------------------------------------------------------------------------

    @property
    def span_kind(self) -> Any:
        """``opentelemetry.trace.SpanKind``."""
        return self._span_kind

    def start(
        self,
        name: str,
        attributes: Mapping[str, Any],
        *,
        kind: Any = None,
        parent: Any = None,
    ) -> tuple[Any, Any]:
        """Start a span, make it current; return it and the token ``finish`` needs.

        Without an SDK the API returns an invalid, non-recording span: it is not made
        current (there is nothing it could parent), which saves the context switch.
        """
        span = self.tracer.start_span(
            name,
            context=parent,
            kind=kind if kind is not None else self._span_kind.INTERNAL,
            attributes=attributes,
        )
        if not span.is_recording() and not span.get_span_context().is_valid:
            return span, None
        return span, self.attach(self.set_span(span))

    def finish(self, span: Any, token: Any, error: BaseException | None = None) -> None:
        """End ``span`` (failed with ``error``, if any) and restore the previous context."""
        if error is not None:
            self.fail(span, error)
        if token is not None:
            self.detach(token)
        span.end()

    def fail(self, span: Any, error: BaseException) -> None:
        """Mark ``span`` failed: exception event, ``error.type``, status ``ERROR``."""
        status, code = self._error
        span.record_exception(error)
        span.set_attribute(ERROR_TYPE, type_name(type(error)))
        span.set_status(status(code, f"{type(error).__name__}: {error}"))

    @property
    def error_status(self) -> tuple[Any, Any]:
        """``(opentelemetry.trace.Status, StatusCode.ERROR)``."""
        return self._error

    def current_span(self) -> Any:
        return self._trace.get_current_span()

    # -- trace context in headers ---------------------------------------------------------

    def inject(self, headers: MutableMapping[str, str], span: Any = None) -> None:
        """Write the current span's (or ``span``'s) trace context into ``headers``."""
        context = self.set_span(span) if span is not None else None
        self.propagator.inject(headers, context=context)

    def extract(self, headers: Mapping[str, str]) -> Any:
        """The context a message's headers carry (empty when they carry none)."""
        return self.propagator.extract(headers)

    # -- handlers ------------------------------------------------------------------------

    async def run_handler(
        self,
        trace: HandlerTrace,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        """Await ``call`` (one handler) in a span of its own, recording its duration."""
        tracer = self.tracer
        span = token = None
        if tracer is not None:
            span, token = self.start(trace.span_name, trace.attributes)
        started = time.perf_counter()
        try:
            result = await call()
        except BaseException as exc:
            if self.handler_duration is not None:
                attributes = {**trace.metric_attributes, ERROR_TYPE: type_name(type(exc))}
                self.handler_duration.record(time.perf_counter() - started, attributes)
            if span is not None:
                self.finish(span, token, exc if isinstance(exc, Exception) else None)
            raise
        if self.handler_duration is not None:
            self.handler_duration.record(time.perf_counter() - started, trace.metric_attributes)
        if span is not None:
            self.finish(span, token)
        return result

    # -- outbox backlog ------------------------------------------------------------------

    def backlog_due(self, now: float, transport: str | None = None) -> bool:
        """Whether a relay should read the outbox's counts again (``backlog_interval``):
        each relay loop of an app with several transports on its own clock."""
        settings = self.settings
        if self.meter is None or settings is None:
            return False
        return now - self.backlog_read_at.get(transport, 0.0) >= settings.backlog_interval

    def record_backlog(
        self,
        counts: Mapping[str, int],
        now: float,
        *,
        oldest_pending_age: float | None = None,
        transport: str | None = None,
    ) -> None:
        """The counts by status of ``transport``'s destinations (``None``: of the outbox)."""
        self.backlog_read_at[transport] = now
        self._backlog[transport] = dict(counts)
        self._oldest_age = oldest_pending_age or 0.0

    def sagas_due(self, now: float) -> bool:
        """Whether a saga runner should read the instances' counts again
        (``backlog_interval``)."""
        settings = self.settings
        if self.meter is None or settings is None:
            return False
        return now - self.sagas_read_at >= settings.backlog_interval

    def record_sagas(self, counts: Mapping[str, int], now: float) -> None:
        self.sagas_read_at = now
        self._sagas = dict(counts)

    def _observe_sagas(self, _options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [Observation(n, {"dockyard.saga.status": s}) for s, n in self._sagas.items()]

    def record_consumer_lag(self, destination: str, group: str, depth: int | None) -> None:
        """A consumer group's backlog as its broker counts it (``None``: forget it)."""
        if depth is None:
            self._consumer_lag.pop((destination, group), None)
        else:
            self._consumer_lag[destination, group] = depth

    def _observe_consumer_lag(self, _options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [
            Observation(n, {DESTINATION: destination, CONSUMER_GROUP: group})
            for (destination, group), n in self._consumer_lag.items()
        ]

    def record_lag(self, projection: str, events: int) -> None:
        self._lag[projection] = events

    def _observe_lag(self, _options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [Observation(n, {PROJECTION: name}) for name, n in self._lag.items()]

    def _observe_oldest(self, _options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [Observation(self._oldest_age)] if self._backlog else []

    def _observe_backlog(self, _options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [
            Observation(
                count,
                {"dockyard.outbox.status": status}
                if transport is None
                else {"dockyard.outbox.status": status, OUTBOX_TRANSPORT: transport},
            )
            for transport, counts in self._backlog.items()
            for status, count in counts.items()
        ]


class HandlerTrace:
    """What a handler's span and measurements carry, computed once per handler."""

    __slots__ = ("attributes", "metric_attributes", "span_name")

    def __init__(self, message_type: type, handler: type) -> None:
        message = type_name(message_type)
        handler_name = type_name(handler)
        self.span_name = f"handle {message}"
        self.attributes: dict[str, Any] = {
            SYSTEM: IN_PROCESS,
            OPERATION_TYPE: "process",
            OPERATION_NAME: "handle",
            DESTINATION: message,
            HANDLER: handler_name,
        }
        self.metric_attributes: dict[str, Any] = {MESSAGE_TYPE: message, HANDLER: handler_name}
