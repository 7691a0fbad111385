"""Payment use cases."""

from __future__ import annotations

from examples.shop.components.payments.domain.gateway import PaymentGateway, Receipt
from examples.shop.infra.settings import ShopSettings
from examples.shop.shared_kernel.ids import CustomerId, OrderId


class PaymentsService:
    def __init__(self, gateway: PaymentGateway, settings: ShopSettings) -> None:
        self._gateway = gateway
        self._currency = settings.currency

    def charge(self, order_id: OrderId, customer_id: CustomerId, amount_cents: int) -> Receipt:
        reference = self._gateway.charge(customer_id, amount_cents, self._currency)
        return Receipt(order_id, amount_cents, self._currency, reference)
