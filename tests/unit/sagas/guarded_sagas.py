"""Checkout sagas whose `charge` has a circuit breaker or a timeout, and a journal that can
also make a step hang."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from checkout_sagas import Charge, ChargeBackup, Checkout, Journal, Notify, Reserve, Ship

from dockyard.retry import CircuitBreaker
from dockyard.sagas import Saga, SagaRecord, SagaStatus, SagaStep, pivot, step


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tripped(name: str, clock: FakeClock, *, reset_after: float = 30) -> CircuitBreaker:
    """A breaker of ``name`` that one failure opens, opened already."""
    breaker = CircuitBreaker(name, failure_threshold=1, reset_after=reset_after, clock=clock)
    breaker.acquire()
    breaker.failed(ConnectionError("down"))
    return breaker


def with_breaker(breaker: CircuitBreaker, *, fallback: bool = True) -> Saga[Checkout]:
    """reserve → charge (behind ``breaker``, with or without a fallback) → ship (pivot)."""
    backup = step("charge-backup", ChargeBackup) if fallback else None
    return Saga(
        "guarded-checkout",
        version=1,
        state=Checkout,
        steps=[
            step("reserve", Reserve),
            step("charge", Charge, breaker=breaker, fallback=backup),
            pivot("ship", Ship),
        ],
    )


@dataclass
class Stalls(Journal):
    """A journal whose ``hang[name] = n`` makes the next ``n`` calls of ``name`` hang (``-1``:
    all of them) until cancelled."""

    hang: dict[str, int] = field(default_factory=dict)

    async def hit_or_hang(self, name: str) -> None:
        left = self.hang.get(name, 0)
        if left:
            self.hang[name] = left - 1 if left > 0 else left
            self.calls.append(f"{name} (hangs)")
            await asyncio.Event().wait()
        self.hit(name)


class SlowCharge(SagaStep[Checkout]):
    def __init__(self, journal: Journal) -> None:
        assert isinstance(journal, Stalls)
        self._journal = journal

    async def act(self, state: Checkout) -> None:
        await self._journal.hit_or_hang("charge")
        state.done.append("charge")

    async def compensate(self, state: Checkout) -> None:
        await self._journal.hit_or_hang("undo charge")
        state.done.append("undo charge")


def with_timeout(seconds: float = 0.01) -> Saga[Checkout]:
    """reserve → charge (``timeout=seconds``, act and compensate) → ship (pivot) → notify."""
    return Saga(
        "timed-checkout",
        version=1,
        state=Checkout,
        steps=[
            step("reserve", Reserve),
            step("charge", SlowCharge, timeout=seconds),
            pivot("ship", Ship),
            step("notify", Notify),
        ],
    )


def trail(record: SagaRecord) -> list[tuple[str, str, int]]:
    return [(e.step, e.kind.value, e.attempt) for e in record.log]


def assert_resumed_the_fallback(record: SagaRecord, journal: Journal) -> None:
    """``record`` was left waiting to retry ``charge-backup`` (the breaker had chosen it) and
    completed in an app, with ``journal``, whose breaker was closed: the primary never ran."""
    assert record.status is SagaStatus.COMPLETED
    assert journal.calls == ["charge-backup", "ship"]
    assert trail(record)[1:] == [
        ("charge", "circuit_open", 1),
        ("charge-backup", "failed", 1),
        ("charge-backup", "completed", 2),
        ("ship", "completed", 1),
    ]
