"""How saga runners claim, lease, poll and retry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from dockyard.retry import RetryPolicy

__all__ = ["ProcessSettings", "SagaSettings"]


def _step_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=3, initial_delay=0.1, max_delay=10.0, jitter=True)


def _compensation_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=10, initial_delay=0.5, max_delay=60.0, jitter=True)


@dataclass(frozen=True, slots=True)
class SagaSettings:
    """Settings of the saga runner of one ``SagasModule`` registration."""

    concurrency: int = 8
    """Instances one runner works on at once (each holds a connection during a step; the
    runner holds one more for its lease renewals, docs/operations.md "Connection budget")."""
    lease_ttl: float = 10.0
    """Seconds a runner holds an instance unless renewed; a crashed runner's instances are
    taken over within about ``lease_ttl`` plus one poll. Leases are renewed every
    ``lease_ttl / 3`` and with every checkpoint."""
    max_poll_interval: float = 0.25
    """Longest wait between two claims while nothing is due (the wait starts at 5 ms after
    work and doubles): the latency of instances started in a process without a runner."""
    retry: RetryPolicy = field(default_factory=_step_retry)
    """Attempts of a step before its fallback (or compensation) takes over, unless the step or
    the saga says otherwise: 3 attempts, from 0.1 s doubling up to 10 s, jittered."""
    compensation_retry: RetryPolicy = field(default_factory=_compensation_retry)
    """Attempts of a compensation before the instance parks as failed, unless the saga says
    otherwise: 10 attempts, from 0.5 s doubling up to 60 s, jittered."""
    retain_finished: timedelta | None = None
    """Delete finished instances (completed, compensated, cancelled) this long after they
    ended; ``None`` (the default) keeps them. Running and parked instances are never deleted."""
    purge_interval: float = 60.0
    """Seconds between two purges of each runner (with ``retain_finished``); the first runs
    when the runner starts."""
    purge_batch: int = 500
    """Instances deleted per transaction: a purge deletes batches until one comes back short."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            msg = f"SagaSettings.concurrency must be >= 1, got {self.concurrency}"
            raise ValueError(msg)
        if self.lease_ttl <= 0 or self.max_poll_interval <= 0:
            msg = "SagaSettings.lease_ttl and max_poll_interval must be > 0"
            raise ValueError(msg)
        _check_retention(
            "SagaSettings", self.retain_finished, self.purge_interval, self.purge_batch
        )


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    """Settings of the process managers of one ``ProcessManagersModule`` registration."""

    retain_finished: timedelta | None = None
    """Delete finished instances (completed, cancelled) this long after their last write;
    ``None`` (the default) keeps them. Active instances are never deleted. A start message
    arriving after its instance was deleted starts the key again: keep them longer than
    messages can arrive late."""
    purge_interval: float = 60.0
    """Seconds between two purges of each worker (with ``retain_finished``); the first runs
    when the worker starts."""
    purge_batch: int = 500
    """Instances deleted per transaction: a purge deletes batches until one comes back short."""

    def __post_init__(self) -> None:
        _check_retention(
            "ProcessSettings", self.retain_finished, self.purge_interval, self.purge_batch
        )


def _check_retention(
    owner: str, retain_finished: timedelta | None, purge_interval: float, purge_batch: int
) -> None:
    if purge_interval <= 0 or purge_batch < 1:
        msg = f"{owner}.purge_interval must be > 0 and purge_batch >= 1"
        raise ValueError(msg)
    if retain_finished is not None and retain_finished < timedelta(0):
        msg = f"{owner}.retain_finished must not be negative, got {retain_finished}"
        raise ValueError(msg)
