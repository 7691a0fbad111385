"""The one ``MetaData`` holding every table dockyard owns, with DBA-friendly constraint names."""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
"""Every dockyard table. For Alembic use ``dockyard.sql.alembic.metadata`` (the same object):
importing that module also gives autogenerate PostgreSQL's sequence and functions."""
