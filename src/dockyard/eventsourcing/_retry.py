"""Retry a load–decide–save cycle when another writer got to the stream first."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from dockyard.exceptions import ConcurrencyError
from dockyard.retry import RetryPolicy

__all__ = ["retry_on_conflict"]

P = ParamSpec("P")
R = TypeVar("R")


def retry_on_conflict(
    max_attempts: int = 5, *, initial_delay: float = 0.005, max_delay: float = 0.2
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate an async function (a command handler's ``handle``) to retry on conflicts.

    On :class:`~dockyard.exceptions.ConcurrencyError` the function runs again, up to
    ``max_attempts`` runs in all, after a ``RetryPolicy`` wait: from ``initial_delay``
    doubling up to ``max_delay``, each drawn from ``[0, wait]`` ("full jitter") so competing
    writers spread out instead of colliding again. The last run's conflict propagates.

    The function must load the aggregate itself, so every attempt starts from fresh state.
    The decorated function is a coroutine function, so it may override ``handle``.
    """
    policy = RetryPolicy(max_attempts, initial_delay, max_delay=max_delay)

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            attempt = 1
            while True:
                try:
                    return await func(*args, **kwargs)
                except ConcurrencyError:
                    if policy.exhausted(attempt):
                        raise
                    await asyncio.sleep(policy.delay(attempt))
                    attempt += 1

        return wrapper

    return decorate
