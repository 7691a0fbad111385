"""A step's circuit breaker and timeout, on the in-memory backend."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from checkout_sagas import Charge, Checkout, Journal, Notify, Reserve, Ship, build, run
from guarded_sagas import (
    FakeClock,
    Stalls,
    assert_resumed_the_fallback,
    trail,
    tripped,
    with_breaker,
    with_timeout,
)

from dockyard.exceptions import InvalidSagaError
from dockyard.retry import BreakerState, CircuitBreaker, RetryPolicy
from dockyard.sagas import (
    Saga,
    SagaControl,
    SagaSettings,
    SagasModule,
    SagaStatus,
    SagaStep,
    pivot,
    step,
)
from dockyard.sagas.memory import InMemorySagaBackend


async def test_an_open_breaker_takes_the_fallback_without_calling_the_primary() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("card", failure_threshold=2, reset_after=30, clock=clock)
    saga = with_breaker(breaker)
    journal = Journal(fail={"charge": -1})
    async with build(journal, [saga]) as app:
        first = await run(app, saga, "o-1")  # two failed attempts open the breaker
        assert breaker.state() is BreakerState.OPEN
        journal.calls.clear()
        second = await run(app, saga, "o-2")
    assert trail(first) == [
        ("reserve", "completed", 1),
        ("charge", "failed", 1),
        ("charge", "failed", 2),
        ("charge-backup", "completed", 1),
        ("ship", "completed", 1),
    ]
    assert second.status is SagaStatus.COMPLETED
    assert trail(second) == [
        ("reserve", "completed", 1),
        ("charge", "circuit_open", 1),  # no retries: the breaker said no at once
        ("charge-backup", "completed", 1),
        ("ship", "completed", 1),
    ]
    assert second.log[1].error is not None
    assert second.log[1].error.startswith("CircuitOpenError: Circuit breaker `card` is open")
    assert journal.calls == ["reserve", "charge-backup", "ship"]  # `charge` was not called


async def test_after_reset_after_one_probe_runs_the_primary_and_its_outcome_decides() -> None:
    clock = FakeClock()
    breaker = tripped("card", clock, reset_after=30)
    saga = with_breaker(breaker)
    journal = Journal(fail={"charge": 1})
    async with build(journal, [saga]) as app:
        clock.now += 30  # half-open: the next attempt probes, and fails
        probed = await run(app, saga, "o-1")
        assert breaker.state() is BreakerState.OPEN
        clock.now += 30  # half-open again: this probe succeeds and closes the breaker
        closed = await run(app, saga, "o-2")
        assert breaker.state() is BreakerState.CLOSED
    assert trail(probed)[1:3] == [
        ("charge", "failed", 1),  # the probe
        ("charge", "circuit_open", 2),  # the failed probe opened it again: the retry fails fast
    ]
    assert trail(probed)[3] == ("charge-backup", "completed", 1)
    assert trail(closed) == [
        ("reserve", "completed", 1),
        ("charge", "completed", 1),
        ("ship", "completed", 1),
    ]
    first, second = ["reserve", "charge", "charge-backup", "ship"], ["reserve", "charge", "ship"]
    assert journal.calls == [*first, *second]


async def test_an_open_breaker_without_a_fallback_fails_fast_into_compensation() -> None:
    saga = with_breaker(tripped("card", FakeClock()), fallback=False)
    journal = Journal()
    async with build(journal, [saga]) as app:
        record = await run(app, saga, "o-1")
    assert record.status is SagaStatus.COMPENSATED
    assert trail(record) == [
        ("reserve", "completed", 1),
        ("charge", "circuit_open", 1),
        ("reserve", "compensated", 1),
    ]
    assert journal.calls == ["reserve", "undo reserve"]


async def test_after_the_pivot_an_open_breaker_is_a_failed_attempt_retried_forward() -> None:
    clock = FakeClock()
    breaker = tripped("shipping", clock)
    saga = Saga(
        "ship-first",
        version=1,
        state=Checkout,
        steps=[pivot("ship", Ship), step("notify", Notify, breaker=breaker)],
    )
    journal = Journal()
    async with build(journal, [saga]) as app:
        parked = await run(app, saga, "o-1")
        clock.now += 30
        control = await app.get(SagaControl)
        await control.retry("o-1")
        await control.run_due()
        resumed = await control.get("o-1")
    assert (parked.status, parked.step) == (SagaStatus.FAILED, "notify")
    assert trail(parked)[1:] == [
        ("notify", "circuit_open", 1),
        ("notify", "circuit_open", 2),
        ("notify", "parked", 2),
    ]
    assert resumed.status is SagaStatus.COMPLETED
    assert journal.calls == ["ship", "notify"]


async def test_recovery_resumes_the_branch_the_breaker_chose() -> None:
    # The decision is in the instance's log and position, not in the breaker (which lives in
    # one process): a worker whose breaker is closed resumes the fallback, not the primary.
    backend = InMemorySagaBackend()
    slow = SagaSettings(retry=RetryPolicy(5, initial_delay=3600, jitter=False))
    first_journal = Journal(fail={"charge-backup": 1})
    first = with_breaker(tripped("card", FakeClock()))
    async with build(first_journal, [first], backend=backend, settings=slow) as app:
        waiting = await run(app, first, "o-1")
    assert (waiting.step, waiting.status) == ("charge-backup", SagaStatus.RUNNING)
    assert first_journal.calls == ["reserve", "charge-backup"]

    backend.store.clock = lambda: time.time() + 7200  # the retry is due; a new deployment
    second = with_breaker(CircuitBreaker("card"))  # closed: `charge` would be called
    journal = Journal()
    async with build(journal, [second], backend=backend, settings=slow) as app:
        control = await app.get(SagaControl)
        await control.run_due()
        record = await control.get("o-1")
    assert_resumed_the_fallback(record, journal)


async def test_an_attempt_past_its_timeout_is_cancelled_and_retried() -> None:
    saga = with_timeout()
    journal = Stalls(hang={"charge": 1})
    async with build(journal, [saga]) as app:
        record = await run(app, saga, "o-1")
        state = (await app.get(SagaControl)).state(record)
    assert record.status is SagaStatus.COMPLETED
    assert trail(record)[1:3] == [("charge", "failed", 1), ("charge", "completed", 2)]
    assert record.log[1].error == (
        "StepTimeoutError: Step `charge` of saga `o-1` ran longer than its timeout of 0.01 s: "
        "the attempt was cancelled and its transaction rolled back. Hint: it counts as a "
        "failed attempt (retried, then the fallback or compensation); raise `timeout=` if the "
        "step needs longer."
    )
    assert journal.calls == ["reserve", "charge (hangs)", "charge", "ship", "notify"]
    assert isinstance(state, Checkout)
    assert state.done == ["reserve", "charge", "ship", "notify"]


async def test_a_step_that_always_times_out_is_compensated() -> None:
    saga = with_timeout()
    journal = Stalls(hang={"charge": -1})
    async with build(journal, [saga]) as app:
        record = await run(app, saga, "o-1")
    assert record.status is SagaStatus.COMPENSATED
    assert trail(record) == [
        ("reserve", "completed", 1),
        ("charge", "failed", 1),
        ("charge", "failed", 2),
        ("reserve", "compensated", 1),
    ]
    assert journal.calls == ["reserve", "charge (hangs)", "charge (hangs)", "undo reserve"]


async def test_a_compensation_past_the_timeout_is_a_failed_compensation_attempt() -> None:
    saga = with_timeout()
    journal = Stalls(hang={"undo charge": -1}, fail={"ship": -1})
    async with build(journal, [saga]) as app:
        record = await run(app, saga, "o-1")
    assert (record.status, record.step) == (SagaStatus.FAILED, "charge")
    assert trail(record)[-3:] == [
        ("charge", "compensation_failed", 1),
        ("charge", "compensation_failed", 2),
        ("charge", "parked", 2),
    ]
    assert record.error is not None
    assert record.error.startswith("StepTimeoutError: Step `charge` of saga `o-1`")


class SlowGateway(SagaStep[Checkout]):
    async def act(self, state: Checkout) -> None:
        raise TimeoutError("the gateway gave up")


async def test_a_steps_own_timeout_error_is_not_taken_for_the_steps_timeout() -> None:
    saga = Saga(
        "own-timeout",
        version=1,
        state=Checkout,
        steps=[step("charge", SlowGateway, timeout=60)],
    )
    async with build(Journal(), [saga]) as app:
        record = await run(app, saga, "o-1")
    assert record.status is SagaStatus.COMPENSATED
    assert [e.error for e in record.log] == ["TimeoutError: the gateway gave up"] * 2


def test_breakers_and_timeouts_are_checked_with_the_definition() -> None:
    bad = Saga(
        "bad",
        version=1,
        state=Checkout,
        steps=[
            step("reserve", Reserve, timeout=0, breaker=CircuitBreaker("stock")),
            step("charge", Charge, breaker="card", timeout=timedelta(seconds=-1)),  # type: ignore[arg-type]
            step("ship", Ship, breaker=CircuitBreaker("stock")),
        ],
    )
    assert bad.problems() == [
        "Saga `bad`: step `reserve` has timeout 0; give seconds > 0 or a `timedelta`",
        (
            "Saga `bad`: the breaker of step `charge` is `'card'`; write "
            "`breaker=CircuitBreaker(name, ...)` (from `dockyard.retry`)"
        ),
        "Saga `bad`: step `charge` has timeout -1.0; give seconds > 0 or a `timedelta`",
        (
            "Saga `bad`: step `ship` has another `CircuitBreaker` named `stock` than an "
            "earlier step; a breaker's state is its object's, so pass the same object to share "
            "it, or give them different names"
        ),
    ]
    with pytest.raises(InvalidSagaError, match="4 problems"):
        SagasModule.register(sagas=[bad])
    shared = CircuitBreaker("stock")
    good = Saga(
        "good",
        version=1,
        state=Checkout,
        steps=[step("reserve", Reserve, breaker=shared), step("ship", Ship, breaker=shared)],
    )
    assert good.problems() == []


def test_the_diagram_shows_the_breaker_and_the_timeout() -> None:
    saga = with_breaker(CircuitBreaker("card"))
    drawn = saga.diagram()
    assert "    s1 --> s1_fallback : gave up or circuit open" in drawn.splitlines()
    assert "    s1_fallback --> undo_s0 : gave up" in drawn.splitlines()
    alone = with_breaker(CircuitBreaker("card"), fallback=False).diagram()
    assert "    s1 --> undo_s0 : gave up or circuit open" in alone.splitlines()
    timed = with_timeout(seconds=2.5).diagram()
    assert '    state "charge (timeout 2.5 s)" as s1' in timed.splitlines()
