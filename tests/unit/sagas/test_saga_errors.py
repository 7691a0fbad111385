"""The saga errors' messages, as docs/errors.md shows them."""

from __future__ import annotations

from dockyard.exceptions import (
    InvalidSagaError,
    SagaAlreadyStartedError,
    SagaError,
    SagaNotFoundError,
    SagaNotRegisteredError,
    SagaStateError,
    SagaVersionError,
    StepTimeoutError,
)


def test_messages_say_what_where_and_how_to_fix() -> None:
    assert str(InvalidSagaError(["Saga `checkout` has no steps"])) == (
        "1 problem in the saga definitions:\n  1. Saga `checkout` has no steps"
    )
    assert str(SagaNotRegisteredError("refund", ["checkout"])) == (
        "Saga `refund` is not registered in this app (registered: `checkout`). Hint: list it "
        "in `SagasModule.register(sagas=[...])`; a definition that differs from the "
        "registered one of the same name counts as another saga."
    )
    assert str(SagaNotFoundError("o-1")) == (
        "No saga instance has the id `o-1`. Hint: list instances with "
        "`await control.list(name=..., status=...)`; an instance exists once the transaction "
        "that started it has committed."
    )
    assert str(SagaStateError("o-1", "running", "retry")) == (
        "Cannot retry saga `o-1`: it is running, not failed. Hint: only a parked (failed) "
        "saga can be retried, skipped or cancelled; check "
        "`(await control.get(saga_id)).status` first."
    )
    assert str(SagaAlreadyStartedError("o-1", "checkout")) == (
        "A saga instance with the id `o-1` already exists, so `checkout` was not started "
        'again (a finished id is never run twice). Hint: pass `if_exists="return"` to get '
        "the existing instance's handle instead, or start under a new id."
    )
    assert str(SagaVersionError("o-1", "checkout", 1, 2)) == (
        "Saga `o-1` was started as `checkout` version 1, and this app runs version 2, which "
        "does not declare it can resume it. Hint: add `compatible_with=(1,)` to the "
        "definition if its steps can resume such an instance, or run the old version to "
        "finish it; then `await control.retry('o-1')`."
    )
    assert str(SagaVersionError("o-1", "checkout", 1, 1, "charge")) == (
        "Saga `o-1` is at step `charge`, which `checkout` version 1 does not have: the steps "
        "changed without a new `version`. Hint: deploy a definition that has the step, or "
        "bump `version` and finish old instances with the old code; then "
        "`await control.retry('o-1')`."
    )
    assert str(StepTimeoutError("o-1", "charge", 2.5)) == (
        "Step `charge` of saga `o-1` ran longer than its timeout of 2.5 s: the attempt was "
        "cancelled and its transaction rolled back. Hint: it counts as a failed attempt "
        "(retried, then the fallback or compensation); raise `timeout=` if the step needs "
        "longer."
    )
    assert isinstance(StepTimeoutError("o-1", "charge", 1), TimeoutError)
    for error in (
        SagaNotFoundError("o-1"),
        SagaStateError("o-1", "running", "retry"),
        SagaAlreadyStartedError("o-1", "checkout"),
        SagaVersionError("o-1", "checkout", 1, 2),
    ):
        assert isinstance(error, SagaError)
    assert isinstance(SagaNotFoundError("o-1"), LookupError)
    assert isinstance(SagaAlreadyStartedError("o-1", "c"), ValueError)
