"""An app with five problems at once, for ``dockyard check`` to list together.

Copied next to ``storefront/app.py`` as ``storefront/broken.py``; ``App.build`` raises while
the module is imported, as it would in a real ``app.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard import App, Command, module, scoped, singleton
from dockyard.messaging import CommandHandler


@dataclass(frozen=True)
class Refund(Command[None]):
    order_id: str


class Invoices:
    pass


class Ledger:
    def __init__(self, invoices: Invoices) -> None:  # Billing does not export it
        self.invoices = invoices


class Mailer:
    pass


class Receipts:
    def __init__(self, mailer: Mailer) -> None:  # nobody provides it
        self.mailer = mailer


class RefundHandler(CommandHandler[Refund, None]):
    async def handle(self, request: Refund, /) -> None:
        del request


class RefundAgain(CommandHandler[Refund, None]):  # a second handler for one command
    async def handle(self, request: Refund, /) -> None:
        del request


class Report:  # in `handlers=[...]`, but not a handler
    pass


class Totals:
    def __init__(self, ledger: Ledger) -> None:  # a singleton holding a scoped object
        self.ledger = ledger


@module(providers=[scoped(Invoices)], handlers=[RefundHandler])
class Billing: ...


@module(
    imports=[Billing],
    providers=[scoped(Ledger), scoped(Receipts), singleton(Totals)],
    handlers=[RefundAgain, Report],
)
class Accounting: ...


app = App.build(Accounting)
