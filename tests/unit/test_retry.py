"""``RetryPolicy``: one backoff type, with each feature's own default instance."""

import random

import pytest

from dockyard.consumer import ErrorPolicies
from dockyard.outbox import RelaySettings
from dockyard.projections import RunnerSettings
from dockyard.retry import RetryPolicy


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
