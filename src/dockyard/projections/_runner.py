"""``CatchUpRunner``: follows the global log for one projection, under a lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from dishka.exceptions import NoFactoryError

from dockyard.exceptions import (
    CorruptEventError,
    MissingUpcasterError,
    StoreUnavailableError,
    UnknownEventTypeError,
)
from dockyard.modules._supervisor import backoff, service_degraded, service_running
from dockyard.projections._engine import Engine, LocalState, Step, StepOutcome, describe
from dockyard.projections._leases import LeaseStore
from dockyard.projections._notify import EventNotifier
from dockyard.telemetry._instruments import BATCH_COUNT, OUTCOME, PROJECTION, Instruments

if TYPE_CHECKING:  # annotation only; the control is resolved from the container
    from dockyard.projections._control import ProjectionControl

__all__ = ["CatchUpRunner", "new_owner"]

logger = logging.getLogger("dockyard.projections")

_BURST = 1.0
"""Seconds of fast polling after a notice: the notified events may not be readable yet."""
_FIRST_POLL = 0.005


def new_owner() -> str:
    """A lease owner id naming this host and process, unique per runner."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


async def _wait_any(events: Sequence[asyncio.Event], seconds: float | None) -> None:
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


class CatchUpRunner:
    """A ``BackgroundService`` running one catch-up projection or subscription.

    ``run(stop)`` waits for the projection's lease, applies batches while it holds it (renewing
    it every ``lease_ttl / 3``), and returns once ``stop`` is set, after the in-flight batch,
    having released the lease. Any number of copies may run in different processes: one
    applies, the others stand by and take over within ``lease_ttl * 4 / 3`` if it dies.
    """

    __slots__ = ("_instruments", "_resolve_control", "name", "owner")

    reports_health = True  # says when it works again after an outage (worker supervision)

    def __init__(
        self,
        name: str,
        control: Callable[[], Awaitable[ProjectionControl]],
        *,
        instruments: Instruments | None = None,
    ) -> None:
        self._instruments = instruments
        self.name = name
        self.owner = new_owner()
        """Who holds the lease while this runner works: ``host:pid:id``."""
        self._resolve_control = control

    def __repr__(self) -> str:
        return f"<CatchUpRunner {self.name!r} owner={self.owner!r}>"

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; return after the in-flight batch, lease released."""
        control = await self._resolve_control()
        engine = control.engine(self.name)
        local = control.local(self.name)
        leases = await control.singleton(LeaseStore)
        ttl = engine.settings.lease_ttl
        async with _listening(control) as notices:
            while not stop.is_set():
                try:
                    held = await leases.acquire(self.name, self.owner, ttl)
                except StoreUnavailableError as error:
                    local.last_error = describe(error)
                    service_degraded(local.last_error)
                    await _wait_any([stop], ttl / 3)
                    continue
                service_running()  # holding the lease or standing by: both are working
                if not held:
                    await _wait_any([stop], ttl / 3)
                    continue
                lost, done = asyncio.Event(), asyncio.Event()
                heartbeat = asyncio.create_task(self._heartbeat(leases, ttl, lost, [stop, done]))
                lag = self._measure_lag(control, [stop, done])
                local.running = True
                try:
                    await work(
                        engine,
                        local,
                        [stop, lost],
                        notices,
                        until_idle=False,
                        instruments=self._instruments,
                    )
                finally:
                    local.running = False
                    done.set()
                    if _cancelling():
                        # Forced to stop (a second signal, or past the grace period): wait for
                        # nothing, a renewal in flight or the release may hang on a database
                        # that does not answer; the lease expires after its ttl.
                        heartbeat.cancel()
                        if lag is not None:
                            lag.cancel()
                    else:
                        if lag is not None:  # ends after the read in flight, if any
                            await asyncio.gather(lag, return_exceptions=True)
                        await self._let_go(leases, heartbeat)

    def _measure_lag(
        self, control: ProjectionControl, stops: list[asyncio.Event]
    ) -> asyncio.Task[None] | None:
        """With telemetry metrics, a task that reads the projection's lag (events after its
        checkpoint: one count query) every ``backlog_interval`` while this runner holds the
        lease, for the ``dockyard.projection.lag`` gauge."""
        instruments = self._instruments
        if instruments is None or instruments.meter is None or instruments.settings is None:
            return None
        interval = instruments.settings.backlog_interval

        async def measure() -> None:
            while not any(s.is_set() for s in stops):
                with contextlib.suppress(StoreUnavailableError):
                    progress = await control.progress(self.name)
                    instruments.record_lag(self.name, progress.remaining)
                await _wait_any(stops, interval)

        return asyncio.create_task(measure())

    async def _let_go(self, leases: LeaseStore, heartbeat: asyncio.Task[None]) -> None:
        """Let a renewal in flight finish (cancelled mid-statement, it would break its
        connection and log an error on the way out), then release the lease."""
        try:
            await heartbeat
        except asyncio.CancelledError:
            heartbeat.cancel()
            raise
        with contextlib.suppress(StoreUnavailableError):
            await asyncio.shield(leases.release(self.name, self.owner))

    async def _heartbeat(
        self, leases: LeaseStore, ttl: float, lost: asyncio.Event, stops: list[asyncio.Event]
    ) -> None:
        renewed = time.monotonic()
        while not any(s.is_set() for s in stops):
            await _wait_any(stops, ttl / 3)
            if any(s.is_set() for s in stops):
                return
            try:
                if not await leases.acquire(self.name, self.owner, ttl):
                    break
                renewed = time.monotonic()
            except StoreUnavailableError:
                if time.monotonic() - renewed >= ttl:
                    break  # it may have expired: assume someone else has it now
        if not any(s.is_set() for s in stops):
            logger.warning("projection %s: lost its lease (owner %s)", self.name, self.owner)
            lost.set()


def _cancelling() -> bool:
    """Whether the running task is being cancelled."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


@contextlib.asynccontextmanager
async def _listening(control: ProjectionControl) -> AsyncIterator[asyncio.Event | None]:
    try:
        notifier: EventNotifier = await control.singleton(EventNotifier)
    except NoFactoryError:
        yield None
        return
    async with notifier.listen() as notices:
        yield notices


async def work(
    engine: Engine,
    local: LocalState,
    stops: list[asyncio.Event],
    notices: asyncio.Event | None,
    *,
    until_idle: bool,
    instruments: Instruments | None = None,
) -> None:
    """Apply batches until one of ``stops`` is set (or, with ``until_idle``, the log is done).

    A failing batch is replayed one event per transaction; the failing event is retried per
    the retry policy, then the projection parks on it. An event that cannot be read (corrupt,
    unknown type, no upcaster) parks it at once, after the events before it are applied.
    """
    worker = _Worker(engine, local, stops, notices, until_idle)
    if instruments is not None and instruments.active:
        worker.instruments = instruments
    await worker.run()


class _Worker:
    __slots__ = (
        "attempts",
        "burst_until",
        "engine",
        "instruments",
        "isolate_until",
        "local",
        "notices",
        "outages",
        "poll",
        "stops",
        "until_idle",
        "waits",
    )

    def __init__(
        self,
        engine: Engine,
        local: LocalState,
        stops: list[asyncio.Event],
        notices: asyncio.Event | None,
        until_idle: bool,
    ) -> None:
        self.engine = engine
        self.local = local
        self.stops = stops
        self.notices = notices
        self.until_idle = until_idle
        self.waits = [*stops, local.wake] if notices is None else [*stops, local.wake, notices]
        self.isolate_until: int | None = None
        self.attempts = 0
        self.outages = 0
        self.poll = _FIRST_POLL
        self.burst_until = 0.0
        self.instruments: Instruments | None = None

    async def run(self) -> None:
        settings = self.engine.settings
        while not any(s.is_set() for s in self.stops):
            self.local.wake.clear()
            if self.notices is not None:
                self.notices.clear()
            limit = 1 if self.isolate_until is not None else settings.batch_size
            started = time.time_ns()
            try:
                step = await self.engine.step(limit, self.local)
            except StoreUnavailableError as error:
                self.local.last_error = describe(error)
                service_degraded(self.local.last_error)  # one log line per outage, not per try
                self.outages += 1
                await _wait_any(self.stops, backoff(self.outages, settings.idle_poll_interval))
                continue
            except (CorruptEventError, UnknownEventTypeError, MissingUpcasterError) as error:
                await self._unreadable(error, limit)
                continue
            if self.outages:
                self.outages = 0
                self.local.last_error = None
            self._record(step, started)
            service_running()
            if step.outcome is StepOutcome.APPLIED:
                self.attempts, self.poll = 0, _FIRST_POLL
                self.local.last_error = None
                if (
                    self.isolate_until is not None
                    and step.checkpoint.position >= self.isolate_until
                ):
                    self.isolate_until = None
            elif step.outcome is StepOutcome.CONFLICT:
                await _wait_any(self.stops, _FIRST_POLL)
            elif step.outcome is StepOutcome.FAILED:
                await self._failed(step)
            elif self.until_idle:  # IDLE, PARKED or PAUSED
                return
            elif step.outcome in {StepOutcome.PARKED, StepOutcome.PAUSED}:
                await _wait_any(self.waits, settings.idle_poll_interval)
            else:
                await self._idle()

    def _record(self, step: Step, started: int) -> None:
        """With telemetry: a span for a batch that read events (after the fact: idle polls
        make none), and the events applied."""
        instruments = self.instruments
        if instruments is None or not step.batch:
            return
        name = self.engine.target.name
        if instruments.projected is not None and step.applied:
            instruments.projected.add(step.applied, {PROJECTION: name})
        tracer = instruments.tracer
        if tracer is None:
            return
        span = tracer.start_span(
            f"project {name}",
            start_time=started,
            attributes={
                PROJECTION: name,
                BATCH_COUNT: step.batch,
                "dockyard.projection.applied": step.applied,
                "dockyard.projection.position": step.checkpoint.position,
                OUTCOME: step.outcome.value,
            },
        )
        if step.error is not None:
            instruments.fail(span, step.error)
        span.end()

    async def _failed(self, step: Step) -> None:
        assert step.error is not None
        assert step.failed is not None
        retry = self.engine.settings.retry
        error = self.local.last_error = describe(step.error)
        if step.batch > 1:
            self.isolate_until = step.last_read  # replay one by one to find the culprit
            return
        self.attempts += 1
        logger.warning(
            "projection %s: event at %d failed (attempt %d of %d): %s",
            self.engine.target.name,
            step.failed.global_position,
            self.attempts,
            retry.max_attempts,
            error,
        )
        if self.attempts >= retry.max_attempts:
            await self.engine.park(
                self.local,
                step.checkpoint.position,
                step.failed.global_position,
                error,
                self.attempts,
            )
            self.attempts, self.isolate_until = 0, None
            return
        await _wait_any(self.stops, retry.delay(self.attempts))

    async def _unreadable(
        self, error: CorruptEventError | UnknownEventTypeError | MissingUpcasterError, limit: int
    ) -> None:
        """An event of the batch cannot be read: apply the ones before it, then park on it.

        Reading it again gives the same answer, so there are no retries: the status shows the
        position and the reason until someone makes it readable and retries, or skips it.
        """
        name = self.engine.target.name
        # the error's own hint is about rows and upcasters; ProjectionFailedError gives one
        reason = self.local.last_error = describe(error).split(" Hint: ")[0]
        if error.position is None:  # an adapter that does not say where: report, try later
            logger.error("projection %s: an event cannot be read: %s", name, reason)
            await _wait_any(self.stops, self.engine.settings.max_poll_interval)
            return
        if limit > 1:
            self.isolate_until = error.position  # one event per step up to it
            return
        logger.error(
            "projection %s: parked at global position %d, its event cannot be read: %s",
            name,
            error.position,
            reason,
        )
        await self.engine.park(self.local, None, error.position, reason, 0)
        self.attempts, self.isolate_until = 0, None

    async def _idle(self) -> None:
        settings = self.engine.settings
        if self.notices is None or time.monotonic() < self.burst_until:
            await _wait_any(self.waits, self.poll)
            self.poll = min(self.poll * 2, settings.max_poll_interval)
            return
        await _wait_any(self.waits, settings.idle_poll_interval)
        if self.notices.is_set():
            self.burst_until, self.poll = time.monotonic() + _BURST, _FIRST_POLL
