"""``RetryPolicy``: how often something failing is tried again, how long to wait, when to stop;
``CircuitBreaker``: when to stop calling something that keeps failing, and when to try again.

One type for every retry in dockyard; each feature has its own default instance:

========================================  ========  =======  =========  ======
where                                     attempts  first    cap        jitter
========================================  ========  =======  =========  ======
``RelaySettings.retry`` (outbox relay)    10        0.5 s    300 s      yes
``retry_later()`` (consumer redelivery)   5         0.1 s    30 s       yes
transient errors (consumer default)       10        0.5 s    60 s       yes
``RunnerSettings.retry`` (projections)    5         0.1 s    5 s        no
``retry_on_conflict()`` (event sourcing)  5         0.005 s  0.2 s      yes
``SagaSettings.retry`` (saga steps)       3         0.1 s    10 s       yes
``SagaSettings.compensation_retry``       10        0.5 s    60 s       yes
========================================  ========  =======  =========  ======

``RetryPolicy()`` alone is the consumer's default (5 attempts, 0.1 s doubling up to 30 s,
jittered); start from a feature's default with ``dataclasses.replace`` to change one field.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from dockyard._errors.messaging import CircuitOpenError

__all__ = ["BreakerState", "CircuitBreaker", "RetryPolicy"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff and when to give up.

    The wait after failed attempt *n* is ``initial_delay × multiplier^(n-1)``, capped at
    ``max_delay``; with ``jitter`` a uniformly random part of it is taken instead ("full
    jitter"), so many processes retrying one broken dependency do not retry in step.

    Attributes:
        max_attempts: Attempts in all, the first one included; after the last, give up (a
            dead letter, a parked projection, the conflict raised).
        initial_delay: Seconds to wait after the first failed attempt.
        multiplier: Each later wait is this many times longer (1: a constant wait).
        max_delay: The longest wait.
        jitter: Wait a random part of the computed delay.
    """

    max_attempts: int = 5
    initial_delay: float = 0.1
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            msg = f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}"
            raise ValueError(msg)
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            msg = "RetryPolicy delays must be >= 0 and its multiplier >= 1"
            raise ValueError(msg)

    def exhausted(self, attempts: int) -> bool:
        """Whether something that failed ``attempts`` times must not be tried again."""
        return attempts >= self.max_attempts

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, attempt - 1))
        if not self.jitter:
            return float(ceiling)
        return (rng or random).uniform(0.0, ceiling)


class BreakerState(enum.StrEnum):
    """Where a ``CircuitBreaker`` is."""

    CLOSED = "closed"
    """Calls go through; failures in a row are counted."""
    OPEN = "open"
    """Calls fail fast (``CircuitOpenError``) until ``reset_after`` has passed."""
    HALF_OPEN = "half_open"
    """``reset_after`` has passed: the next call is a probe; its outcome closes or re-opens."""


class CircuitBreaker:
    """Stops calling a dependency that keeps failing, then probes it with one call.

    Closed, it counts failures in a row; ``failure_threshold`` of them open it. Open, every
    call fails fast with ``CircuitOpenError`` without running. Once ``reset_after`` has passed
    one call is let through as a probe (half-open; others still fail fast while it runs): if
    it succeeds the breaker closes, if it fails the breaker opens for another ``reset_after``.

    Its state lives in this object, in this process: share the object (a module-level
    constant) wherever calls to the same dependency should trip it together, e.g. a saga
    step's ``breaker=`` and a ``CircuitBreakerBehavior`` around a handler. Each process
    (each worker) learns on its own that a dependency is down.

    Example:
        ```python
        payments = CircuitBreaker("payments", failure_threshold=5, reset_after=30)
        result = await payments.call(gateway.charge, order)
        ```

    Args:
        name: Names the dependency in errors, logs and saga step logs.
        failure_threshold: Failures in a row that open the breaker.
        reset_after: Seconds (or a ``timedelta``) the breaker stays open before a probe.
        failure_types: The errors that count as failures; any other error is passed on and
            counts as an answer from the dependency (a success).
        clock: Monotonic seconds; tests pass a fake one instead of sleeping.
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_opened_at",
        "_probing",
        "failure_threshold",
        "failure_types",
        "name",
        "reset_after",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_after: float | timedelta = 30.0,
        failure_types: tuple[type[BaseException], ...] = (Exception,),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        seconds = reset_after.total_seconds() if isinstance(reset_after, timedelta) else reset_after
        if not name:
            msg = "CircuitBreaker needs a non-empty name"
            raise ValueError(msg)
        if failure_threshold < 1:
            msg = f"CircuitBreaker.failure_threshold must be >= 1, got {failure_threshold}"
            raise ValueError(msg)
        if seconds <= 0:
            msg = f"CircuitBreaker.reset_after must be > 0, got {reset_after!r}"
            raise ValueError(msg)
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after = float(seconds)
        self.failure_types = failure_types
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state().value!r})"

    def state(self) -> BreakerState:
        """Closed, open, or half-open (``reset_after`` passed: the next call probes), now."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock() < self._opened_at + self.reset_after:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def retry_in(self) -> float:
        """Seconds until a probe is let through (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_after - self._clock())

    def acquire(self) -> None:
        """Let one call through, or raise ``CircuitOpenError``; report its outcome with
        :meth:`succeeded`, :meth:`failed` or :meth:`abandoned`.

        Raises:
            CircuitOpenError: The breaker is open, or half-open with its probe running.
        """
        state = self.state()
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.OPEN:
            raise CircuitOpenError(self.name, self._failures, self.retry_in())
        self._probing = True

    def succeeded(self) -> None:
        """The call answered: close the breaker and forget past failures."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failed(self, error: BaseException) -> None:
        """The call failed with ``error``: count it if it is one of ``failure_types``."""
        if not isinstance(error, self.failure_types):
            self.succeeded()
            return
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._probing = False

    def abandoned(self) -> None:
        """The call ended without an answer (cancelled): a probe may be tried again."""
        self._probing = False

    async def call(self, function: Callable[..., Awaitable[T]], /, *args: object) -> T:
        """``await function(*args)`` through the breaker.

        Raises:
            CircuitOpenError: The breaker is open; ``function`` was not called.
        """
        self.acquire()
        try:
            result = await function(*args)
        except Exception as error:
            self.failed(error)
            raise
        except BaseException:
            self.abandoned()
            raise
        self.succeeded()
        return result
