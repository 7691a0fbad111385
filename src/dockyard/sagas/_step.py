"""``SagaStep``: the handler a saga step runs, and how it is undone."""

from __future__ import annotations

import abc
from typing import Any, Generic, TypeVar

__all__ = ["SagaStep", "is_compensable"]

S = TypeVar("S")


class SagaStep(abc.ABC, Generic[S]):
    """What one step of a saga does, and how it is undone. Constructor parameters are injected.

    Each attempt gets a new instance in a new scope, and the state as the last checkpoint left
    it; change the state in place. With ``SqlModule``, everything the step writes through the
    scope's unit of work (repositories, ``Outbox``) commits with the saga's checkpoint, or not
    at all.

    Example:
        ```python
        class ReserveStock(SagaStep[Checkout]):
            def __init__(self, stock: StockRepository) -> None:
                self._stock = stock

            async def act(self, state: Checkout) -> None:
                state.reservation = await self._stock.reserve(state.items)

            async def compensate(self, state: Checkout) -> None:
                await self._stock.release(state.reservation)
        ```
    """

    __slots__ = ()

    @abc.abstractmethod
    async def act(self, state: S, /) -> None:
        """Do the step; raise to fail this attempt (it is retried per the step's policy)."""

    async def compensate(self, state: S, /) -> None:
        """Undo ``act``. Not overridden: the step has nothing to undo, and is skipped."""


def is_compensable(handler: type[SagaStep[Any]]) -> bool:
    """Whether ``handler`` overrides ``compensate``."""
    return getattr(handler, "compensate", None) is not SagaStep.compensate
