"""A step's guards: its circuit breaker around ``act``, its timeout around each attempt, and the
checks of both in its definition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dockyard._type_name import type_name
from dockyard.exceptions import CircuitOpenError, StepTimeoutError
from dockyard.retry import CircuitBreaker

if TYPE_CHECKING:  # annotations only: the definition imports this module to check itself
    from dockyard.sagas._definition import Step

__all__ = ["circuit_opened", "guard_problems", "guarded"]


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


def guard_problems(where: str, branch: Step[Any], breakers: dict[str, CircuitBreaker]) -> list[str]:
    """A step's ``breaker=`` and ``timeout=``: of the right types, one breaker per name."""
    found: list[str] = []
    breaker: object = branch.breaker
    timeout: object = branch.timeout
    if isinstance(breaker, CircuitBreaker):
        shared = breakers.setdefault(breaker.name, breaker)
        if shared is not breaker:
            found.append(
                f"{where}: step `{branch.name}` has another `CircuitBreaker` named "
                f"`{breaker.name}` than an earlier step; a breaker's state is its object's, "
                "so pass the same object to share it, or give them different names"
            )
    elif breaker is not None:
        found.append(
            f"{where}: the breaker of step `{branch.name}` is `{type_name(breaker)}`; write "
            "`breaker=CircuitBreaker(name, ...)` (from `dockyard.retry`)"
        )
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        found.append(
            f"{where}: step `{branch.name}` has timeout {timeout!r}; give seconds > 0 or a "
            "`timedelta`"
        )
    return found
