"""Supervision: every background service a worker runs goes through one ``Supervisor``.

An outage (the database or a broker refuses connections, drops them, or stops answering) is
a state of the service, not a crash: the supervisor marks it *degraded* with the reason, logs
one warning, restarts the service after a backoff with jitter (doubling up to a cap) for as
long as the outage lasts, and logs one info line when the service reports it works again.
Only a bug or a configuration error (any other exception) ends a service: the supervisor
marks it *failed*, logs which service and why, and the worker stops.

Services tell their supervisor how they are doing with :func:`service_running` and
:func:`service_degraded` (outside a worker they do nothing and return ``False``). A service
that handles an outage itself (waits and tries again without raising) reports it this way, so
the log still has one line per change of state, never one per attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import errno
import logging
import random
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only
    from dockyard.modules._extensions import BackgroundService

__all__ = [
    "FIRST_BACKOFF",
    "Outage",
    "ReportsHealth",
    "ServiceHealth",
    "ServiceState",
    "Supervisor",
    "WorkerHealth",
    "backoff",
    "describe",
    "is_outage",
    "service_degraded",
    "service_running",
]

logger = logging.getLogger("dockyard.worker")

FIRST_BACKOFF = 0.1
"""Seconds before the first restart after an outage; each later wait doubles, up to a cap."""


class ServiceState(enum.StrEnum):
    """Where a background service is in its life (``app.health()``)."""

    STARTING = "starting"
    """Started, has not yet reported that it works."""
    RUNNING = "running"
    DEGRADED = "degraded"
    """Something it needs does not answer; it retries with backoff (``reason`` says what)."""
    STOPPED = "stopped"
    FAILED = "failed"
    """Ended by a bug or a configuration error (``reason`` says which); the worker stops."""


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    """One background service's state, with why when it is degraded or failed."""

    name: str
    state: ServiceState
    reason: str | None = None
    since: float = 0.0
    """When it entered this state (seconds since the epoch)."""


class ReportsHealth(Protocol):
    """What ``app.health()`` lists: a supervisor, or an entry point's own record of a service
    it runs (a FastStream endpoint: FastStream runs it, not a supervisor)."""

    def health(self) -> ServiceHealth: ...


@dataclass(frozen=True, slots=True)
class WorkerHealth:
    """The state of every background service of a worker (``app.health()``)."""

    services: tuple[ServiceHealth, ...] = ()

    @property
    def live(self) -> bool:
        """No service has failed (an outage is not a reason to restart the process)."""
        return all(s.state is not ServiceState.FAILED for s in self.services)

    @property
    def ready(self) -> bool:
        """A worker runs and every service in it is running."""
        return bool(self.services) and all(s.state is ServiceState.RUNNING for s in self.services)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view: ``{"live": …, "ready": …, "services": {name: {...}}}``."""
        return {
            "live": self.live,
            "ready": self.ready,
            "services": {
                s.name: {"state": s.state.value, "reason": s.reason, "since": s.since}
                for s in self.services
            },
        }


def describe(error: BaseException) -> str:
    """``Type: message`` of an error, on one line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def backoff(attempt: int, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): half fixed, half jitter."""
    ceiling = min(cap, FIRST_BACKOFF * float(2 ** min(attempt - 1, 30)))
    jitter: float = (rng or random).uniform(0.0, ceiling / 2)
    return ceiling / 2 + jitter


_CONNECTION_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE,
    errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN,
})  # fmt: skip
_PROBATION = 1.0
"""Seconds a restarted service that does not report its health must run to count as running."""
_OUTAGE_NAMES = frozenset(
    {
        # Drivers' "the server is gone or refuses us" errors, by class name: each lives in an
        # optional extra, and this module must not import them.
        "PostgresConnectionError",  # asyncpg
        "InterfaceError",  # asyncpg, SQLAlchemy: the connection is closed
        "PendingRollbackError",  # SQLAlchemy: its connection was invalidated mid-transaction
        "AdminShutdownError",  # asyncpg: pg_terminate_backend, server shutdown
        "CrashShutdownError",
        "CannotConnectNowError",  # the server is starting or stopping
        "TooManyConnectionsError",  # max_connections reached
        "AMQPConnectionError",  # aiormq
        "ChannelInvalidStateError",
        "ConnectionClosedError",  # nats
        "NoServersError",
        "StaleConnectionError",
        "KafkaConnectionError",  # aiokafka
    }
)


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says a server did not answer, not a bug."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError, socket.gaierror)):
            return True
        if isinstance(current, OSError) and (
            current.errno in _CONNECTION_ERRNOS
            or str(current).startswith("Multiple exceptions: ")  # asyncio, every address
        ):
            return True
        if getattr(current, "connection_invalidated", False) is True:  # SQLAlchemy
            return True
        if any(cls.__name__ in _OUTAGE_NAMES for cls in type(current).__mro__):
            return True
        if isinstance(current, BaseExceptionGroup):  # e.g. Dishka's errors closing a scope
            return all(is_outage(inner) for inner in current.exceptions)
        current = current.__cause__ or current.__context__
    return False


class Outage:
    """Logs one warning when something goes down and one info line when it is back."""

    __slots__ = ("_log", "_what", "reason", "started")

    def __init__(self, what: str, log: logging.Logger = logger) -> None:
        self._what = what
        self._log = log
        self.reason: str | None = None
        self.started = 0.0

    def down(self, reason: str) -> bool:
        """Record the outage; ``True`` (and a warning) only when it starts."""
        if self.reason is not None:
            self.reason = reason
            return False
        self.reason, self.started = reason, time.monotonic()
        self._log.warning("%s: degraded, retrying with backoff: %s", self._what, reason)
        return True

    def up(self) -> bool:
        """Record the recovery; ``True`` (and an info line) only when there was an outage."""
        if self.reason is None:
            return False
        seconds = time.monotonic() - self.started
        self.reason = None
        self._log.info("%s: recovered after %.1fs", self._what, seconds)
        return True


_current: contextvars.ContextVar[Supervisor | None] = contextvars.ContextVar(
    "dockyard_supervisor", default=None
)


def service_running() -> bool:
    """Tell the worker that the calling background service works (again).

    Returns whether a worker supervises the caller (outside one nothing is recorded or logged:
    a service that logs its own outages then says the recovery itself).
    """
    supervisor = _current.get()
    if supervisor is None:
        return False
    supervisor.running()
    return True


def service_degraded(reason: str) -> bool:
    """Tell the worker that the calling background service waits on an outage, and why.

    Returns whether a worker supervises the caller; it then logs the outage once, so the
    service need not (outside a worker nothing is recorded or logged).
    """
    supervisor = _current.get()
    if supervisor is None:
        return False
    supervisor.degraded(reason)
    return True


class Supervisor:
    """Runs one background service: restarts it through outages, keeps its state.

    A service whose class sets ``reports_health = True`` calls :func:`service_running` once
    it works (and after each outage); any other service counts as running once started, and
    after an outage once it has run for a second without failing again.
    """

    __slots__ = (
        "_attempts",
        "_generation",
        "_health",
        "_max_backoff",
        "_outage",
        "_reports",
        "_rng",
        "service",
    )

    def __init__(self, service: BackgroundService, *, max_backoff: float = 10.0) -> None:
        if max_backoff < FIRST_BACKOFF:
            msg = f"max_backoff must be at least {FIRST_BACKOFF}s, got {max_backoff}"
            raise ValueError(msg)
        self.service = service
        self._max_backoff = max_backoff
        self._reports = bool(getattr(service, "reports_health", False))
        self._health = ServiceHealth(service.name, ServiceState.STARTING, since=time.time())
        self._outage = Outage(service.name)
        self._attempts = 0
        self._generation = 0
        self._rng = random.Random()  # noqa: S311 - jitter, not cryptography

    @property
    def name(self) -> str:
        return self._health.name

    def health(self) -> ServiceHealth:
        return self._health

    def running(self) -> None:
        self._attempts = 0
        self._outage.up()
        if self._health.state is not ServiceState.RUNNING:
            self._set(ServiceState.RUNNING)

    def degraded(self, reason: str) -> None:
        self._outage.down(reason)
        if self._health.state is not ServiceState.DEGRADED or self._health.reason != reason:
            self._set(ServiceState.DEGRADED, reason)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the service until ``stop`` is set; raise only on a bug or a configuration error."""
        token = _current.set(self)
        try:
            await self._supervise(stop)
        except asyncio.CancelledError:
            if stop.is_set():
                logger.warning("%s: did not stop within the grace period; cancelled", self.name)
            self._set(ServiceState.STOPPED, "cancelled")
            raise
        finally:
            _current.reset(token)

    async def _supervise(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            self._generation += 1
            if not self._reports:
                if self._attempts == 0:
                    self.running()
                else:  # after an outage: once it has run a while without failing again
                    loop.call_later(_PROBATION, self._survived, self._generation)
            try:
                await self.service.run(stop)
            except Exception as error:
                if stop.is_set():
                    # Stopping anyway: say what went wrong, once, and stop like the others. A
                    # server that did not answer (a connection dropped just before the stop)
                    # is an outage, not a bug: a warning, as when running.
                    level = logging.WARNING if is_outage(error) else logging.ERROR
                    logger.log(level, "%s: error while stopping: %s", self.name, describe(error))
                    break
                if not is_outage(error):
                    self._set(ServiceState.FAILED, describe(error))
                    reason = describe(error)  # on the line itself too, for grep
                    logger.exception(
                        "%s: failed (a bug or a configuration error), the worker stops: %s",
                        self.name, reason,
                    )  # fmt: skip
                    raise
                self._attempts += 1
                self.degraded(describe(error))
                await _wait(stop, backoff(self._attempts, self._max_backoff, self._rng))
                continue
            if not stop.is_set():
                self._set(ServiceState.STOPPED, "returned before the worker stopped")
                logger.warning("%s: returned before the worker stopped", self.name)
                return
        self._set(ServiceState.STOPPED)
        logger.info("%s: stopped", self.name)

    def _survived(self, generation: int) -> None:
        if generation == self._generation and self._health.state is ServiceState.DEGRADED:
            self.running()

    def _set(self, state: ServiceState, reason: str | None = None) -> None:
        self._health = ServiceHealth(self._health.name, state, reason, time.time())


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
