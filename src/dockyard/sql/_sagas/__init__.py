"""The SQL adapters of ``dockyard.sagas``'s ports: the saga store and writer, and their table.

Import them from ``dockyard.sql``.
"""
