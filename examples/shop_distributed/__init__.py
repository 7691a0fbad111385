"""The shop's orders and payments as two apps in two processes, joined by a broker.

``python -m examples.shop_distributed rabbit|nats|memory``. Each app has its own SQLite
database holding its outbox and inbox; ``OrderPlaced`` and ``PaymentCaptured`` travel through
the outbox, the relay and the broker. ``memory`` runs both apps in one process on the
in-memory transport (no servers). The domain comes from ``examples.shop``.
"""
