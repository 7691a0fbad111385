"""``RetryPolicy``: one backoff type, with each feature's own default instance."""

import asyncio
import contextlib
import random
from datetime import timedelta

import pytest

from dockyard.consumer import ErrorPolicies
from dockyard.exceptions import CircuitOpenError
from dockyard.outbox import RelaySettings
from dockyard.projections import RunnerSettings
from dockyard.retry import BreakerState, CircuitBreaker, RetryPolicy


def test_backoff_grows_exponentially_within_its_cap_and_jitters() -> None:
    policy = RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=5.0, jitter=False)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittered = RetryPolicy(initial_delay=1.0, max_delay=5.0)
    draws = {jittered.delay(3, random.Random(seed)) for seed in range(20)}
    assert len(draws) == 20
    assert all(0.0 <= d <= 4.0 for d in draws)


def test_it_gives_up_after_max_attempts_counting_the_first() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert [policy.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_attempts": 0}, r"RetryPolicy\.max_attempts must be >= 1, got 0"),
        ({"initial_delay": -1.0}, "RetryPolicy delays must be >= 0 and its multiplier >= 1"),
        ({"max_delay": -1.0}, "RetryPolicy delays must be >= 0 and its multiplier >= 1"),
        ({"multiplier": 0.5}, "RetryPolicy delays must be >= 0 and its multiplier >= 1"),
    ],
)
def test_nonsense_is_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**fields)  # type: ignore[arg-type]


def test_each_feature_has_its_own_default() -> None:
    assert RelaySettings().retry == RetryPolicy(
        max_attempts=10, initial_delay=0.5, max_delay=300.0, jitter=True
    )
    assert RunnerSettings().retry == RetryPolicy(
        max_attempts=5, initial_delay=0.1, max_delay=5.0, jitter=False
    )
    assert ErrorPolicies().default.retry_later == RetryPolicy()
    transient = ErrorPolicies().for_error(TimeoutError()).retry_later
    assert transient == RetryPolicy(max_attempts=10, initial_delay=0.5, max_delay=60.0)


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Dependency:
    """Answers or fails on demand, and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    async def __call__(self, value: int) -> int:
        self.calls += 1
        if self.down:
            raise ConnectionError("down")
        return value


async def failing() -> None:
    raise ConnectionError("down")


async def test_a_breaker_opens_after_failures_in_a_row_and_then_fails_fast() -> None:
    clock, dependency = FakeClock(), Dependency()
    breaker = CircuitBreaker("payments", failure_threshold=3, reset_after=30, clock=clock)
    dependency.down = True
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await breaker.call(dependency, 1)
    assert breaker.state() is BreakerState.CLOSED
    with pytest.raises(ConnectionError):
        await breaker.call(dependency, 1)
    assert breaker.state() is BreakerState.OPEN
    clock.now += 17.5
    with pytest.raises(CircuitOpenError) as raised:
        await breaker.call(dependency, 1)
    assert dependency.calls == 3  # the open breaker did not call it
    assert (raised.value.breaker, raised.value.failures, raised.value.retry_in) == (
        "payments",
        3,
        12.5,
    )
    assert str(raised.value) == (
        "Circuit breaker `payments` is open after 3 failures in a row, so the call was not "
        "made; a probe call is let through in 12.5 s. Hint: the dependency behind `payments` "
        "is failing; fix it or wait, or give the caller a fallback."
    )


async def test_a_success_in_between_resets_the_count() -> None:
    dependency = Dependency()
    breaker = CircuitBreaker("payments", failure_threshold=2, clock=FakeClock())
    for down in (True, False, True, False):
        dependency.down = down
        with contextlib.suppress(ConnectionError):
            await breaker.call(dependency, 1)
    assert breaker.state() is BreakerState.CLOSED


async def test_after_reset_after_one_probe_goes_through_and_its_outcome_decides() -> None:
    clock, dependency = FakeClock(), Dependency()
    breaker = CircuitBreaker(
        "payments", failure_threshold=1, reset_after=timedelta(seconds=10), clock=clock
    )
    dependency.down = True
    with pytest.raises(ConnectionError):
        await breaker.call(dependency, 1)
    clock.now += 10
    assert breaker.state() is BreakerState.HALF_OPEN
    with pytest.raises(ConnectionError):  # the probe fails: open for another 10 s
        await breaker.call(dependency, 1)
    assert (breaker.state(), breaker.retry_in(), dependency.calls) == (BreakerState.OPEN, 10.0, 2)
    clock.now += 10
    dependency.down = False
    assert await breaker.call(dependency, 7) == 7  # the probe succeeds: closed
    assert breaker.state() is BreakerState.CLOSED
    assert await breaker.call(dependency, 8) == 8


async def test_half_open_lets_one_probe_at_a_time_and_a_cancelled_probe_frees_the_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("payments", failure_threshold=1, reset_after=5, clock=clock)
    with pytest.raises(ConnectionError):
        await breaker.call(failing)
    clock.now += 5
    release = asyncio.Event()
    probe = asyncio.create_task(breaker.call(release.wait))
    await asyncio.sleep(0)  # the probe is running
    with pytest.raises(CircuitOpenError):
        await breaker.call(failing)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state() is BreakerState.HALF_OPEN
    release.set()
    assert await breaker.call(release.wait) is True  # the next call probes


async def test_errors_outside_failure_types_pass_through_and_count_as_answers() -> None:
    breaker = CircuitBreaker(
        "payments", failure_threshold=1, failure_types=(ConnectionError,), clock=FakeClock()
    )

    async def refuse() -> None:
        raise ValueError("invalid card")

    with pytest.raises(ValueError, match="invalid card"):
        await breaker.call(refuse)
    assert breaker.state() is BreakerState.CLOSED


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "CircuitBreaker needs a non-empty name"),
        ({"failure_threshold": 0}, r"failure_threshold must be >= 1, got 0"),
        ({"reset_after": timedelta(0)}, r"reset_after must be > 0, got datetime\.timedelta\(0\)"),
    ],
)
def test_a_breaker_refuses_settings_that_cannot_work(
    fields: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"name": "payments", **fields}
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**arguments)  # type: ignore[arg-type]
