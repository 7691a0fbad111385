"""A step attempt's guards: the step's circuit breaker around ``act``, its timeout around both."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from dockyard.exceptions import CircuitOpenError, StepTimeoutError
from dockyard.sagas._definition import Step

__all__ = ["circuit_opened", "guarded"]


async def guarded(
    step: Step[Any],
    saga_id: str,
    call: Callable[[Any], Awaitable[None]],
    state: Any,
    *,
    compensate: bool,
) -> None:
    """``await call(state)`` under ``step``'s timeout, and (for ``act``) through its breaker.

    Raises:
        CircuitOpenError: The step's breaker is open; ``call`` was not made.
        StepTimeoutError: ``call`` ran past the step's timeout and was cancelled.
    """
    breaker = None if compensate else step.breaker
    if breaker is None:
        await _timed(step, saga_id, call, state)
        return
    breaker.acquire()
    try:
        await _timed(step, saga_id, call, state)
    except Exception as error:
        breaker.failed(error)
        raise
    except BaseException:
        breaker.abandoned()
        raise
    breaker.succeeded()


async def _timed(
    step: Step[Any], saga_id: str, call: Callable[[Any], Awaitable[None]], state: Any
) -> None:
    if step.timeout is None:
        await call(state)
        return
    try:
        async with asyncio.timeout(step.timeout) as deadline:
            await call(state)
    except TimeoutError as error:
        if not deadline.expired():
            raise  # the step's own TimeoutError, not ours
        raise StepTimeoutError(saga_id, step.name, step.timeout) from error


def circuit_opened(step: Step[Any], error: Exception) -> bool:
    """Whether ``error`` is ``step``'s own breaker refusing the call."""
    return (
        isinstance(error, CircuitOpenError)
        and step.breaker is not None
        and error.breaker == step.breaker.name
    )
