"""Checkout as a saga: reserve the stock, charge the card (a backup gateway behind it), ship.

Each step has a way back: the reservation is released and the charge refunded when a later
step gives up. Shipping is another service: its step sends ``ShipOrder`` through the outbox
and the saga waits, held by no worker, for ``Shipped`` or ``ShipmentRefused``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.retry import CircuitBreaker, RetryPolicy
from dockyard.sagas import RemoteStep, Saga, SagaStep, SagaStepContext, remote, step
from examples.shop.components.checkout.infra.gateways import (
    BackupGateway,
    CardGateway,
    FakeGateway,
)
from examples.shop.components.inventory.application.service import InventoryService
from examples.shop.shared_kernel.ids import Sku
from examples.shop.shared_kernel.shipping import ShipmentRefused, ShipOrder, Shipped

SHIPPING = "shipping"
"""The shipping service's queue."""


@dataclass
class CheckoutState:
    """The saga's state, stored after every step."""

    order_id: str
    items: dict[str, int]
    amount_cents: int
    address: str
    payment: str | None = None
    tracking: str | None = None
    notes: list[str] = field(default_factory=list)


class ReserveItems(SagaStep[CheckoutState]):
    def __init__(self, inventory: InventoryService) -> None:
        self._inventory = inventory

    async def act(self, state: CheckoutState) -> None:
        for sku, quantity in state.items.items():
            left = self._inventory.reserve(Sku(sku), quantity)
            state.notes.append(f"reserved {quantity} × {sku}, {left} left")

    async def compensate(self, state: CheckoutState) -> None:
        for sku, quantity in state.items.items():
            left = self._inventory.release(Sku(sku), quantity)
            state.notes.append(f"released {quantity} × {sku}, {left} left")


class _Charge(SagaStep[CheckoutState]):
    """Charges the order at a gateway, keyed by the step's idempotency key; refunds it."""

    def __init__(self, gateway: FakeGateway, context: SagaStepContext) -> None:
        self._gateway = gateway
        self._key = context.idempotency_key

    async def act(self, state: CheckoutState) -> None:
        state.payment = self._gateway.charge(self._key, state.amount_cents)

    async def compensate(self, state: CheckoutState) -> None:
        self._gateway.refund(self._key)
        state.notes.append(f"refunded {state.payment}")
        state.payment = None


class ChargeCard(_Charge):
    """The primary gateway, behind a circuit breaker."""

    def __init__(self, gateway: CardGateway, context: SagaStepContext) -> None:
        super().__init__(gateway, context)


class ChargeBackup(_Charge):
    """The fallback: runs, from the state before ``charge-card``, once that step gave up."""

    def __init__(self, gateway: BackupGateway, context: SagaStepContext) -> None:
        super().__init__(gateway, context)


class RequestShipment(RemoteStep[CheckoutState]):
    async def command(self, state: CheckoutState) -> object:
        return ShipOrder(order_id=state.order_id, address=state.address)

    async def on_reply(self, state: CheckoutState, reply: Shipped) -> None:
        state.tracking = reply.tracking


def checkout_saga() -> Saga[CheckoutState]:
    """The definition, with a breaker of its own: one per app (a breaker's state lives in its
    object, in one process)."""
    card_gateway = CircuitBreaker("card-gateway", failure_threshold=2, reset_after=60)
    return Saga(
        "shop.checkout",  # stable: stored instances refer to it
        version=1,
        state=CheckoutState,
        steps=[
            step("reserve-stock", ReserveItems),
            step(
                "charge-card",
                ChargeCard,
                retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=False),
                breaker=card_gateway,
                timeout=5,
                fallback=step("charge-backup", ChargeBackup, timeout=5),
            ),
            remote(
                "ship",
                RequestShipment,
                destination=SHIPPING,
                replies=[Shipped],
                failures=[ShipmentRefused],
                timeout=30,  # no answer in 30 s: the attempt failed
                retry=RetryPolicy(max_attempts=1),  # a refusal is final
            ),
        ],
    )
