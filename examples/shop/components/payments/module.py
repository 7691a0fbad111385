"""The payments component: the gateway stays inside; it listens for placed orders."""

from __future__ import annotations

from dockyard import module, scoped, singleton
from examples.shop.components.payments.application.charge_customer import ChargeCustomer
from examples.shop.components.payments.application.service import PaymentsService
from examples.shop.components.payments.domain.gateway import PaymentGateway
from examples.shop.components.payments.infra.fake_gateway import AcceptingGateway
from examples.shop.infra.lifecycle import AnnounceLifecycle
from examples.shop.infra.module import InfraModule


@module(
    providers=[singleton(PaymentGateway, AcceptingGateway), scoped(PaymentsService)],
    imports=[InfraModule],
    handlers=[ChargeCustomer],
    extensions=[AnnounceLifecycle()],
    exports=[PaymentsService],
)
class PaymentsModule: ...
