"""Which driver errors say "the database did not answer" (``StoreUnavailableError``)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from dockyard.exceptions import StoreUnavailableError
from dockyard.sql._errors import as_store_error


class _DriverError(Exception):
    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "message"),
    [
        ("08003", "connection was closed in the middle of operation"),  # asyncpg
        ("08006", "connection failure"),
        ("57P01", "terminating connection due to administrator command"),
    ],
)
def test_a_lost_connection_is_unavailable_wrapped_or_not(sqlstate: str, message: str) -> None:
    raw = _DriverError(sqlstate, message)
    wrapped = DBAPIError("SELECT 1", None, raw)  # as SQLAlchemy raises it, not invalidated
    for error in (raw, wrapped):
        translated = as_store_error("claim outbox messages", error)
        assert isinstance(translated, StoreUnavailableError), error
        assert message in str(translated)


@pytest.mark.parametrize("sqlstate", ["23505", "40001", "42P01"])
def test_the_servers_answers_are_not_outages(sqlstate: str) -> None:
    error = DBAPIError("INSERT", None, _DriverError(sqlstate, "an answer"))
    assert as_store_error("append", error) is None
