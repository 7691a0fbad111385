"""The SQL adapters of ``dockyard.eventsourcing``'s ports: the event store, its tables, the
global log (PostgreSQL), the raw-driver append and read paths, and the snapshot store.

Import them from ``dockyard.sql``.
"""
