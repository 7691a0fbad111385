"""Two card gateways the demo can switch off: the primary one and its backup."""

from __future__ import annotations


class FakeGateway:
    """Charges by idempotency key, so a repeated charge is one charge; refunds by it too."""

    prefix = "pay"

    def __init__(self) -> None:
        self.up = True
        self.charges: dict[str, int] = {}
        self.refunded: list[str] = []

    def charge(self, key: str, amount_cents: int) -> str:
        if not self.up:
            msg = f"{type(self).__name__} is down"
            raise ConnectionError(msg)
        self.charges[key] = amount_cents
        return f"{self.prefix}-{key.split(':')[1]}"

    def refund(self, key: str) -> None:
        if self.charges.pop(key, None) is not None:
            self.refunded.append(key)


class CardGateway(FakeGateway):
    prefix = "card"


class BackupGateway(FakeGateway):
    prefix = "backup"
