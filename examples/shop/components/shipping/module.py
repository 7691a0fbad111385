"""The shipping service: it consumes ``ShipOrder`` commands and answers each with a reply.

A small app of its own in the demo (``build_shipping_app``): it shares nothing with the shop
but the transport. It replies while it handles the command, so the reply carries the
command's ``dockyard-saga-*`` headers and finds its way back to the saga instance.
"""

from __future__ import annotations

from dockyard import module
from dockyard.messaging import CommandHandler, MessageContext
from dockyard.outbox import Outbox
from examples.shop.shared_kernel.shipping import ShipmentRefused, ShipOrder, Shipped

CHECKOUT_REPLIES = "checkout-replies"
"""Where the shop's checkout saga listens for shipping's replies."""

SERVED = frozenset({"Lyon", "Berlin", "Lisbon"})
"""The cities the demo's courier delivers to."""


class ShipOrderHandler(CommandHandler[ShipOrder, None]):
    def __init__(self, outbox: Outbox, context: MessageContext) -> None:
        self._outbox = outbox
        self._context = context

    async def handle(self, command: ShipOrder, /) -> None:
        reply: Shipped | ShipmentRefused
        if command.address in SERVED:
            # The idempotency key is the same on every send of the step: a courier booking
            # keyed by it is made once, however often the saga asks.
            key = self._context.headers["idempotency-key"]
            reply = Shipped(order_id=command.order_id, tracking=f"trk-{key.rsplit(':', 2)[1]}")
        else:
            reply = ShipmentRefused(
                order_id=command.order_id, reason=f"no courier delivers to {command.address}"
            )
        await self._outbox.add(reply, destination=CHECKOUT_REPLIES)


@module(handlers=[ShipOrderHandler])
class ShippingModule: ...
