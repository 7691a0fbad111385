"""The SQL adapters of ``dockyard.outbox``'s ports: the outbox store, writer and storage, the
inbox, and their tables.

Import them from ``dockyard.sql``.
"""
