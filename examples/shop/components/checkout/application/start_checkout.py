"""Checking out an order: a command that starts the checkout saga."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.messaging import Command, CommandHandler
from dockyard.retry import CircuitBreaker
from dockyard.sagas import Saga, Sagas
from examples.shop.components.checkout.application.saga import CheckoutState


@dataclass(frozen=True, slots=True)
class CheckoutSaga:
    """The app's checkout saga definition, provided to the handler that starts it."""

    definition: Saga[CheckoutState]

    @property
    def breaker(self) -> CircuitBreaker:
        """The card gateway's circuit breaker (its state lives in this process)."""
        breaker = self.definition.steps[1].breaker
        assert breaker is not None
        return breaker


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOut(Command[str]):
    order_id: str
    items: dict[str, int]
    amount_cents: int
    address: str


class CheckOutHandler(CommandHandler[CheckOut, str]):
    def __init__(self, sagas: Sagas, saga: CheckoutSaga) -> None:
        self._sagas = sagas
        self._saga = saga.definition

    async def handle(self, command: CheckOut, /) -> str:
        # Written in this handler's transaction: no instance if the command fails.
        state = CheckoutState(
            command.order_id, dict(command.items), command.amount_cents, command.address
        )
        handle = await self._sagas.start(self._saga, state, saga_id=command.order_id)
        return handle.saga_id
