"""``dockyard.sql.alembic``: the SQL it gives hand-written revisions, the op autogenerate
renders, and an empty diff on SQLite once dockyard's tables exist. PostgreSQL, where the
comparator adds the sequence and functions: ``tests/integration/sql/test_db_commands.py``
and ``tests/docs/test_migrations_page.py``."""

from __future__ import annotations

import builtins
import importlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata, render_python_code
from alembic.migration import MigrationContext
from alembic.operations import ops
from sqlalchemy import Column, Connection, Integer, MetaData, Table, create_engine

import dockyard.sql
import dockyard.sql.alembic
from dockyard.exceptions import MissingExtraError
from dockyard.sql._schema import FUNCTIONS
from dockyard.sql.alembic import (
    DockyardPostgresOp,
    postgres_downgrade_sql,
    postgres_upgrade_sql,
)


@pytest.fixture
def connection() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def test_metadata_is_dockyards() -> None:
    assert dockyard.sql.alembic.metadata is dockyard.sql.metadata


def test_the_upgrade_sql_creates_the_sequence_and_functions_and_drops_old_triggers() -> None:
    sql = postgres_upgrade_sql()
    assert sql[0].startswith("CREATE SEQUENCE IF NOT EXISTS dockyard_events_position")
    assert sql[1:5] == [function.create for function in FUNCTIONS]
    assert sql[5].startswith("SELECT setval('dockyard_events_position'")
    assert sql[6:] == [
        "DROP TRIGGER IF EXISTS dockyard_events_notify ON dockyard_events",
        "DROP FUNCTION IF EXISTS dockyard_notify_events()",
        "DROP TRIGGER IF EXISTS dockyard_outbox_notify ON dockyard_outbox",
        "DROP FUNCTION IF EXISTS dockyard_notify_outbox()",
    ]


def test_the_downgrade_sql_drops_functions_then_the_sequence() -> None:
    assert postgres_downgrade_sql() == [
        "DROP FUNCTION IF EXISTS dockyard_count_after",
        "DROP FUNCTION IF EXISTS dockyard_log_head",
        "DROP FUNCTION IF EXISTS dockyard_read_all",
        "DROP FUNCTION IF EXISTS dockyard_log_horizon",
        "DROP SEQUENCE IF EXISTS dockyard_events_position",
    ]


def _rendered(*operations: ops.MigrateOperation) -> str:
    """The body of ``upgrade()`` autogenerate writes, as a function of its own."""
    code = render_python_code(ops.UpgradeOps(ops=list(operations)))
    return f"def upgrade():\n    {code}\n"


def test_the_op_renders_plain_op_execute_calls_with_the_sql_written_out() -> None:
    horizon = FUNCTIONS[0]
    op = DockyardPostgresOp("create", "function", horizon.name, [horizon.create], [horizon.drop])
    code = _rendered(op)
    assert "# dockyard: create function dockyard_log_horizon" in code
    assert "import dockyard" not in code
    calls: list[str] = []

    class Recorder:
        def execute(self, sql: str) -> None:
            calls.append(sql)

    namespace: dict[str, Any] = {"op": Recorder()}
    exec(code, namespace)
    namespace["upgrade"]()
    assert [" ".join(c.split()) for c in calls] == [" ".join(horizon.create.split())]
    undo = "    op.execute('DROP FUNCTION IF EXISTS dockyard_log_horizon')\n"
    assert undo in _rendered(op.reverse())


def test_the_op_reverses_and_shows_in_diffs() -> None:
    op = DockyardPostgresOp(
        "drop", "trigger", "dockyard_outbox_notify", ["DROP ..."], ["CREATE ..."]
    )
    back = op.reverse()
    assert (back.action, back.statements, back.reverse_statements) == (
        "create",
        ("CREATE ...",),
        ("DROP ...",),
    )
    assert op.to_diff_tuple() == ("dockyard_drop_trigger", "dockyard_outbox_notify")
    catch_up = DockyardPostgresOp("catch up", "sequence", "s", ["SELECT setval(...)"])
    assert catch_up.to_diff_tuple() == ("dockyard_catch_up_sequence", "s")
    assert "execute" not in _rendered(catch_up.reverse())  # nothing to undo


def _diff(connection: Connection, target: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"target_metadata": target})
    return list(compare_metadata(context, target))


def test_sqlite_autogenerate_is_empty_once_the_tables_exist(connection: Connection) -> None:
    app_metadata = MetaData()
    Table("orders", app_metadata, Column("id", Integer, primary_key=True))
    added = {d[0] for d in _diff(connection, dockyard.sql.alembic.metadata)}
    assert added == {"add_table", "add_index"}
    dockyard.sql.metadata.create_all(connection)
    app_metadata.create_all(connection)
    assert _diff(connection, [app_metadata, dockyard.sql.alembic.metadata]) == []


def test_without_alembic_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def refuse(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "alembic" or name.startswith("alembic."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "dockyard.sql.alembic")
    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(MissingExtraError) as caught:
        importlib.import_module("dockyard.sql.alembic")
    assert str(caught.value) == (
        "dockyard.sql.alembic needs Alembic, which is not installed. "
        "Hint: pip install 'dockyard[alembic]'"
    )
