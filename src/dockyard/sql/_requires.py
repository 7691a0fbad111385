"""Imported first by ``dockyard.sql``: without SQLAlchemy, say which extra installs it."""

from dockyard.exceptions import MissingExtraError

try:
    import sqlalchemy  # noqa: F401 - only checked here
except ImportError as missing:  # pragma: no cover - exercised without the extras
    raise MissingExtraError("dockyard.sql", "SQLAlchemy", "sqlite,postgres") from missing
