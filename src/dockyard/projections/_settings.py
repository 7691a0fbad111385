"""How catch-up runners batch, poll, lease and retry."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.retry import RetryPolicy

__all__ = ["RunnerSettings"]


def _runner_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=5, initial_delay=0.1, max_delay=5.0, jitter=False)


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """Settings of every catch-up runner of one ``ProjectionsModule`` registration."""

    batch_size: int = 500
    """Events applied per transaction (one checkpoint write each)."""
    lease_ttl: float = 10.0
    """Seconds a lease lasts unless renewed; a crashed runner's work is taken over within
    ``lease_ttl * 4 / 3``. Heartbeats renew it every ``lease_ttl / 3``."""
    max_poll_interval: float = 0.1
    """Longest wait between polls when there is no notifier (and in a burst after a notice)."""
    idle_poll_interval: float = 5.0
    """With a notifier (PostgreSQL ``LISTEN``): the safety poll while nothing is notified."""
    retry: RetryPolicy = field(default_factory=_runner_retry)
    """How often a failing event is retried before the projection parks on it: 5 attempts,
    waits from 0.1 s doubling up to 5 s (no jitter: one runner holds a projection's lease)."""
    held_back_warning: float = 30.0
    """Seconds an open transaction that appended may hold the projection back (PostgreSQL)
    before the runner logs a warning naming it (once; an info line when it ends)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            msg = f"RunnerSettings.batch_size must be >= 1, got {self.batch_size}"
            raise ValueError(msg)
        if self.lease_ttl <= 0 or self.max_poll_interval <= 0 or self.idle_poll_interval <= 0:
            msg = "RunnerSettings intervals must be > 0"
            raise ValueError(msg)
