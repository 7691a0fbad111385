"""``RetryPolicy``: exponential backoff with jitter, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["RetryPolicy"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failed deliveries are retried before the message becomes a dead letter.

    The wait after failed attempt *n* is ``initial_delay × multiplier^(n-1)``, capped at
    ``max_delay``; with ``jitter`` a uniformly random part of it is taken instead ("full
    jitter"), so many relays retrying one broken broker do not retry in step.
    """

    max_attempts: int = 10
    """Attempts in all, the first one included; after the last, the message is dead."""
    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            msg = f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}"
            raise ValueError(msg)
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            msg = "RetryPolicy delays must be >= 0 and its multiplier >= 1"
            raise ValueError(msg)

    def exhausted(self, attempts: int) -> bool:
        """Whether a message that failed ``attempts`` times must now be dead-lettered."""
        return attempts >= self.max_attempts

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, attempt - 1))
        if not self.jitter:
            return float(ceiling)
        return (rng or random).uniform(0.0, ceiling)
