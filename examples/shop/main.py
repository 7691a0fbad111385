"""The shop's two apps as the ``dockyard`` command loads them.

``dockyard describe examples.shop.main:shop`` (from the repository's root) shows the shop app
of ``make demo``: orders and inventory, its outbox routing ``OrderPlaced`` to payments, its
consumer hearing back. ``examples.shop.main:payments`` is the other app. Each is built on the
in-memory transport and a new SQLite file in a temporary folder (removed at exit), which only
a started app opens: ``check``, ``describe`` and ``graph`` never do.
"""

from __future__ import annotations

from dockyard import App
from dockyard.transport.memory import InMemoryTransport
from examples.shop.app import build_payments_app, build_shop_app
from examples.shop.ui.web import new_database


def shop() -> App:
    """The shop app of ``make demo``."""
    return build_shop_app(new_database(), InMemoryTransport())


def payments() -> App:
    """The payments app of ``make demo``."""
    return build_payments_app(InMemoryTransport())
