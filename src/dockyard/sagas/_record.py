"""What a store keeps of one saga instance: its row, its status and its step log."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["SagaLogEntry", "SagaLogKind", "SagaRecord", "SagaStatus", "StepAction"]


class SagaStatus(enum.StrEnum):
    """Where a saga instance is in its life."""

    RUNNING = "running"
    """Running its steps forward (or due to: every unfinished instance is claimable)."""
    COMPENSATING = "compensating"
    """Undoing its completed steps, newest first."""
    COMPLETED = "completed"
    """Every step completed."""
    COMPENSATED = "compensated"
    """A step gave up before the pivot and every completed step was compensated."""
    FAILED = "failed"
    """Parked with its error: a compensation gave up, a step after the pivot gave up, or the
    instance cannot run on this definition. ``SagaControl.retry`` or ``cancel`` it."""
    CANCELLED = "cancelled"
    """An operator ended a parked instance; nothing more runs."""

    @property
    def is_active(self) -> bool:
        """Whether runners claim it (``running`` or ``compensating``)."""
        return self in _ACTIVE

    @property
    def is_finished(self) -> bool:
        """Whether it reached an end: completed, compensated or cancelled."""
        return self in _FINISHED


_ACTIVE = frozenset({SagaStatus.RUNNING, SagaStatus.COMPENSATING})
_FINISHED = frozenset({SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.CANCELLED})


class StepAction(enum.StrEnum):
    """What is to be done next on the instance's current step."""

    ACT = "act"
    COMPENSATE = "compensate"
    AWAIT_REPLY = "await_reply"
    """A remote step's command was sent; the instance waits for its reply (or timeout)."""


class SagaLogKind(enum.StrEnum):
    """What one entry of an instance's step log records."""

    COMPLETED = "completed"
    """A step's ``act`` committed (a remote step's: its reply was applied)."""
    SENT = "sent"
    """A remote step's command committed to the outbox; the instance awaits the reply."""
    FAILED = "failed"
    """An attempt of a step's ``act`` raised (its transaction rolled back)."""
    CIRCUIT_OPEN = "circuit_open"
    """The step's circuit breaker was open: ``act`` was not called, and the step gave up at
    once (to its fallback, else compensation; after the pivot, a failed attempt)."""
    COMPENSATED = "compensated"
    """A step's ``compensate`` committed."""
    COMPENSATION_FAILED = "compensation_failed"
    """An attempt of a step's ``compensate`` raised."""
    PARKED = "parked"
    """The instance was parked: retries ran out, or it cannot run on this definition."""
    RETRIED = "retried"
    """An operator resumed a parked instance."""
    CANCELLED = "cancelled"
    """An operator ended a parked instance."""
    SKIPPED = "skipped"
    """An operator skipped the step (or compensation) a parked instance stopped at: it went on
    as if that step had completed (or been compensated)."""


@dataclass(frozen=True, slots=True)
class SagaLogEntry:
    """One line of an instance's step log."""

    step: str
    kind: SagaLogKind
    attempt: int
    """The attempt number on that step (1-based; 0 for operator entries)."""
    at: float
    """Seconds since the epoch, on the clock of the process that wrote it."""
    error: str | None = None
    note: str | None = None
    """On an operator's entry: who did it and why, as they said (``by ann: refunded by hand``)."""


@dataclass(frozen=True, slots=True)
class SagaRecord:
    """One saga instance as a store keeps it (one row).

    ``version`` is the fence: every change a runner writes names the version it read and the
    owner it is, and is refused if either moved.
    """

    saga_id: str
    name: str
    """The saga's stable name (``Saga.name``)."""
    definition_version: int
    """The ``Saga.version`` the instance was started under."""
    status: SagaStatus
    step: str | None
    """The step to act on or compensate next (or the one it failed on); ``None`` once done."""
    action: StepAction
    attempts: int
    """Failed attempts of the current step (and action) so far."""
    state_type: str
    """The state's stable type name in the serializer's registry."""
    state_schema: int
    state: bytes
    version: int
    owner: str | None = None
    """The runner holding it (``host:pid:id``), or ``None``."""
    lease_until: float | None = None
    """When the owner's lease ends (epoch seconds, on the store's clock)."""
    due_at: float = 0.0
    """When it may run next (epoch seconds, on the store's clock): retries wait here."""
    error: str | None = None
    """The last error (of a failed attempt, or why it is parked)."""
    log: tuple[SagaLogEntry, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0
