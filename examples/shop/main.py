"""The shop's two apps as the ``dockyard`` command loads them.

``dockyard describe examples.shop.main:shop`` (from the repository's root) shows the shop app
of ``make demo``: orders and inventory, its outbox routing ``OrderPlaced`` to payments, its
consumer hearing back. ``examples.shop.main:payments`` is the other app. Each is built on the
in-memory transport and a new SQLite file in a temporary folder (removed at exit), which only
a started app opens: ``check``, ``describe`` and ``graph`` never do. ``checkout`` and
``shipping`` are the two apps of the demo's checkout saga
(``dockyard graph examples.shop.main:checkout saga shop.checkout`` draws it).
"""

from __future__ import annotations

from dockyard import App
from dockyard.transport.memory import InMemoryTransport
from examples.shop.app import (
    build_checkout_app,
    build_payments_app,
    build_shipping_app,
    build_shop_app,
)
from examples.shop.ui.web import new_database


def shop() -> App:
    """The shop app of ``make demo``."""
    return build_shop_app(new_database(), InMemoryTransport())


def payments() -> App:
    """The payments app of ``make demo``."""
    return build_payments_app(InMemoryTransport())


def checkout() -> App:
    """The checkout app of ``make demo``: inventory and the checkout saga."""
    return build_checkout_app(new_database(), InMemoryTransport())


def shipping() -> App:
    """The shipping service the checkout saga's remote step sends ``ShipOrder`` to."""
    return build_shipping_app(InMemoryTransport())
