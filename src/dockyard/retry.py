"""``RetryPolicy``: how often something failing is tried again, how long to wait, when to stop.

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

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


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
