"""``dockyard.testing.SagaHarness``: sagas in a test on a fake clock, steps failing on demand,
given/when/then. Nothing here sleeps: retries an hour apart pass when the clock is moved."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from checkout_sagas import CHECKOUT, Checkout, Journal, build

from dockyard.modules import DynamicModule, ModuleLike
from dockyard.retry import RetryPolicy
from dockyard.sagas import SagaSettings, SagaStatus
from dockyard.sql import SqlModule
from dockyard.testing import FakeClock, InjectedStepError, SagaHarness, SpecFailedError

HOURLY = SagaSettings(
    retry=RetryPolicy(3, initial_delay=3600, multiplier=1, max_delay=3600, jitter=False),
    compensation_retry=RetryPolicy(2, initial_delay=600, max_delay=600, jitter=False),
)
"""Retries an hour apart (compensations ten minutes apart): a test that slept would hang."""


def root(journal: Journal, sql: DynamicModule | None = None) -> ModuleLike:
    return build(journal, settings=HOURLY, sql=sql).root


async def test_retries_wait_for_the_clock_and_run_when_it_reaches_them() -> None:
    journal = Journal()
    async with SagaHarness(root(journal)) as harness:
        harness.fail("charge", times=2)
        saga_id = await harness.start(CHECKOUT, Checkout("o-1"), saga_id="o-1")
        assert await harness.run() == 2  # reserve, charge (failed): the retry is an hour away
        record = await harness.get(saga_id)
        assert (record.status, record.step, record.attempts) == (SagaStatus.RUNNING, "charge", 1)
        assert record.due_at == harness.clock() + 3600
        assert await harness.advance(3599) == 0  # not yet
        assert await harness.advance(1) == 1  # due: the second attempt fails too
        assert await harness.advance(timedelta(hours=2)) == 3  # the third: charge, ship, notify
        record = await harness.get(saga_id)
    assert record.status is SagaStatus.COMPLETED
    assert [(e.step, e.kind.value, e.at - record.created_at) for e in record.log] == [
        ("reserve", "completed", 0.0),
        ("charge", "failed", 0.0),
        ("charge", "failed", 3600.0),  # the log's times are the fake clock's
        ("charge", "completed", 3600.0 + 7200.0),
        ("ship", "completed", 3600.0 + 7200.0),
        ("notify", "completed", 3600.0 + 7200.0),
    ]
    assert journal.calls == ["reserve", "charge", "ship", "notify"]  # failed ones never ran
    assert harness.calls[:3] == [("reserve", "act"), ("charge", "act"), ("charge", "act")]


async def test_given_when_then_runs_to_the_end_on_the_clock() -> None:
    clock = FakeClock(start=1_000.0)
    async with SagaHarness(root(Journal()), clock=clock) as harness:
        record = await (
            harness.given(CHECKOUT, Checkout("o-1"), saga_id="o-1")
            .when_step_fails("charge", times=3)
            .when_step_fails("charge-backup", times=3, error=ConnectionError("backup down"))
            .then(
                status=SagaStatus.COMPENSATED,
                log=[
                    ("reserve", "completed"),
                    ("charge", "failed", 1),
                    ("charge", "failed", 2),
                    ("charge", "failed", 3),
                    ("charge-backup", "failed"),
                    ("charge-backup", "failed"),
                    ("charge-backup", "failed"),
                    ("reserve", "compensated"),
                ],
                state=Checkout("o-1", done=["reserve", "undo reserve"]),
            )
        )
    assert record.error == "ConnectionError: backup down"
    assert clock() == 1_000.0 + 4 * 3600  # two hours of retries per branch, not slept


async def test_a_failing_compensation_parks_after_its_retries() -> None:
    async with SagaHarness(root(Journal())) as harness:
        record = await (
            harness.given(CHECKOUT, Checkout("o-1"))
            .when_step_fails("ship", times=-1)
            .when_compensation_fails("charge", times=-1)
            .then(status=SagaStatus.FAILED)
        )
        assert record.log[-1].error == (
            "InjectedStepError: compensation of step `charge` failed (the saga harness made "
            "it fail)"
        )
        harness.fail("charge", times=0, compensation=True)  # the refund service is back
        await harness.control.retry(record.saga_id)
        await harness.settle()
        assert (await harness.get(record.saga_id)).status is SagaStatus.COMPENSATED


async def test_a_spec_that_does_not_hold_says_what_differs() -> None:
    async with SagaHarness(root(Journal())) as harness:
        scenario = harness.given(CHECKOUT, Checkout("o-1"), saga_id="o-1").when_step_fails(
            "reserve", times=-1
        )
        with pytest.raises(SpecFailedError) as failed:
            await scenario.then(status=SagaStatus.COMPLETED, log=[("reserve", "completed")])
    assert str(failed.value) == (
        "saga `o-1`: expected status completed, but it is compensated\n"
        "expected log [('reserve', 'completed')]\n"
        "     but got [('reserve', 'failed', 1), ('reserve', 'failed', 2), "
        "('reserve', 'failed', 3)]"
    )


async def test_settle_gives_up_at_its_horizon_and_fail_checks_step_names() -> None:
    async with SagaHarness(root(Journal())) as harness:
        with pytest.raises(ValueError, match="no registered saga has a step `chrage`"):
            harness.fail("chrage")
        harness.fail("charge", times=2)
        await harness.start(CHECKOUT, Checkout("o-1"), saga_id="o-1")
        with pytest.raises(SpecFailedError, match=r"still active 1800.0 s on: \['o-1'\]"):
            await harness.settle(within=timedelta(minutes=30))
        assert await harness.settle() == 2 * 3600
    with pytest.raises(ValueError, match="does not go back"):
        FakeClock().advance(-1)
    with pytest.raises(RuntimeError, match="async with SagaHarness"):
        SagaHarness(root(Journal())).fail("charge")


async def test_an_app_on_sql_runs_in_memory_on_the_fake_clock(tmp_path: Path) -> None:
    sql = SqlModule.register(f"sqlite+aiosqlite:///{tmp_path}/h.db", create_tables=True)
    journal = Journal()
    async with SagaHarness(root(journal, sql=sql)) as harness:
        harness.fail("notify", times=1, error=InjectedStepError("mail down"))
        record = await harness.given(CHECKOUT, Checkout("o-1")).then(status=SagaStatus.COMPLETED)
        assert await harness.backend.store.get(record.saga_id) == record
    assert journal.calls == ["reserve", "charge", "ship", "notify"]
