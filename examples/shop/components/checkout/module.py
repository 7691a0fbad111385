"""The checkout component: the saga that reserves stock, charges and ships an order."""

from __future__ import annotations

from dockyard import module, object_, singleton
from dockyard.sagas import SagasModule
from examples.shop.components.checkout.application.saga import checkout_saga
from examples.shop.components.checkout.application.start_checkout import (
    CheckOutHandler,
    CheckoutSaga,
)
from examples.shop.components.checkout.infra.gateways import BackupGateway, CardGateway
from examples.shop.components.inventory.module import InventoryModule


@module(
    providers=[singleton(CardGateway), singleton(BackupGateway)],
    exports=[CardGateway, BackupGateway],
)
class GatewaysModule:
    """The card gateways the saga's payment steps call (fakes the demo switches off)."""


def checkout_module() -> type:
    """A checkout module with a saga definition (and circuit breaker) of its own."""
    saga = checkout_saga()
    sagas = SagasModule.register(sagas=[saga], imports=[InventoryModule, GatewaysModule])

    @module(
        providers=[object_(CheckoutSaga(saga))],
        imports=[InventoryModule, GatewaysModule, sagas],
        handlers=[CheckOutHandler],
        exports=[CardGateway, BackupGateway, CheckoutSaga],
    )
    class CheckoutModule: ...

    return CheckoutModule
