"""The SQL adapters of ``dockyard.projections``'s ports: checkpoints, leases, the
``LISTEN``/``NOTIFY`` event notifier, and their tables.

Import them from ``dockyard.sql``.
"""
