"""``CircuitBreakerBehavior``: fail fast around a handler whose dependency keeps failing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dockyard.messaging._behavior import PipelineBehavior
from dockyard.retry import CircuitBreaker

__all__ = ["CircuitBreakerBehavior"]


class CircuitBreakerBehavior(PipelineBehavior[Any, Any]):
    """Runs the handlers it wraps through ``breaker``: while it is open they are not called
    and the caller gets ``CircuitOpenError``; once ``reset_after`` has passed, one call probes.

    Give it as an instance (the breaker's state is the instance's), e.g.
    ``MessagingSettings(handler_behaviors={ChargeHandler: [CircuitBreakerBehavior(payments)]})``.
    For a stream, only the creation of its iterator goes through the breaker.

    Args:
        breaker: The breaker; share it to trip several handlers (or saga steps) together.
    """

    __slots__ = ("breaker",)

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker

    async def handle(
        self,
        message: Any,  # noqa: ARG002 - the behavior's signature; any message trips it alike
        call_next: Callable[[], Awaitable[Any]],
        /,
    ) -> Any:
        return await self.breaker.call(call_next)
