"""Payments reacts to a placed order by charging the customer, then says so."""

from __future__ import annotations

from dockyard.messaging import EventHandler, IPublisher
from examples.shop.components.payments.application.service import PaymentsService
from examples.shop.shared_kernel.events import OrderPlaced, PaymentCaptured
from examples.shop.ui.console import say_meanwhile


class ChargeCustomer(EventHandler[OrderPlaced]):
    def __init__(self, payments: PaymentsService, events: IPublisher) -> None:
        self._payments = payments
        self._events = events

    async def handle(self, event: OrderPlaced, /) -> None:
        receipt = self._payments.charge(event.order_id, event.customer_id, event.total_cents)
        say_meanwhile(f"   payments: charged {receipt.amount_cents / 100:.2f} {receipt.currency}")
        await self._events.publish(
            PaymentCaptured(
                order_id=event.order_id,
                amount_cents=receipt.amount_cents,
                reference=receipt.reference,
            )
        )
