"""Statements compiled once for asyncpg: the values in ``$n`` order, as SQLAlchemy makes them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import InvalidRequestError

from dockyard.sql._unit_of_work import _positional

DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


PLAIN = sa.text("UPDATE t SET a = :a, b = :b WHERE id = :id AND a <> :a")
TYPED = sa.text("UPDATE t SET at = :at, doc = :doc WHERE id = :id").bindparams(
    sa.bindparam("at", type_=sa.DateTime(timezone=True)),
    sa.bindparam("doc", type_=sa.JSON()),
)
DEFAULTED = sa.text("SELECT * FROM t WHERE id = :id AND kind = :kind").bindparams(
    sa.bindparam("kind", value="default")
)


def _sqlalchemys(statement: Any, params: dict[str, Any]) -> list[Any]:
    compiled = statement.compile(dialect=DIALECT)
    values = compiled.construct_params(params)
    return [values[name] for name in compiled.positiontup]


@pytest.mark.parametrize(
    ("statement", "params"),
    [
        (PLAIN, {"a": 1, "b": b"\x00", "id": "x"}),
        (PLAIN, {"a": None, "b": None, "id": "x", "unused": 3}),
        (TYPED, {"at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "doc": {"k": [1]}, "id": "x"}),
        (DEFAULTED, {"id": 7}),
        (DEFAULTED, {"id": 7, "kind": "given"}),
    ],
)
def test_values_in_order_as_sqlalchemy_makes_them(statement: Any, params: dict[str, Any]) -> None:
    for _ in range(2):  # compiled, then from the cache
        sql, values = _positional(statement, params, DIALECT)
        assert values == _sqlalchemys(statement, params)
        assert sql == str(statement.compile(dialect=DIALECT))
    if statement is PLAIN:
        assert len(values) == 3  # `a` is used twice, sent once: $1


def test_a_missing_value_is_sqlalchemys_error() -> None:
    with pytest.raises(InvalidRequestError, match="A value is required for bind parameter 'b'"):
        _positional(PLAIN, {"a": 1, "id": "x"}, DIALECT)
