"""An app that does not build, for ``dockyard check`` in docs/cli.md.

``dockyard check docs.examples.cli_broken_app:app`` (from the repository's root) lists both of
its problems at once; ``app()`` builds it only when the command calls it.
"""

from dockyard import App, module, scoped


class Invoices: ...


class Ledger:
    def __init__(self, invoices: Invoices) -> None:  # Billing provides it, but keeps it
        self.invoices = invoices


class Mailer: ...


class Receipts:
    def __init__(self, mailer: Mailer) -> None:  # no module provides it
        self.mailer = mailer


@module(providers=[scoped(Invoices)])
class Billing: ...


@module(imports=[Billing], providers=[scoped(Ledger), scoped(Receipts)])
class Accounting: ...


def app() -> App:
    return App.build(Accounting)
