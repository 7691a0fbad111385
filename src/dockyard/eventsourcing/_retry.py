"""Retry a load–decide–save cycle when another writer got to the stream first."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from dockyard.exceptions import ConcurrencyError

__all__ = ["ConflictRetry", "retry_on_conflict"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ConflictRetry:
    """How to retry on :class:`~dockyard.exceptions.ConcurrencyError`.

    Delays grow exponentially from ``base_delay`` up to ``max_delay``, each drawn uniformly from
    ``[0, delay]`` ("full jitter"), so competing writers spread out instead of colliding again.
    """

    attempts: int = 5
    base_delay: float = 0.005
    max_delay: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            msg = f"attempts must be at least 1, got {self.attempts}"
            raise ValueError(msg)
        if not 0 <= self.base_delay <= self.max_delay:
            msg = "delays must satisfy 0 <= base_delay <= max_delay"
            raise ValueError(msg)

    def delay(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography

    async def run(self, operation: Callable[[], Awaitable[R]]) -> R:
        """Run ``operation`` (which must reload what it changes) until it commits or gives up."""
        for attempt in range(1, self.attempts):
            try:
                return await operation()
            except ConcurrencyError:
                await asyncio.sleep(self.delay(attempt))
        return await operation()  # the last attempt's conflict propagates


def retry_on_conflict(
    attempts: int = 5, *, base_delay: float = 0.005, max_delay: float = 0.2
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate an async function (a command handler's ``handle``) to retry on conflicts.

    The function must load the aggregate itself, so every attempt starts from fresh state.
    """
    policy = ConflictRetry(attempts, base_delay, max_delay)

    def decorate(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            return await policy.run(lambda: func(*args, **kwargs))

        return wrapper

    return decorate
