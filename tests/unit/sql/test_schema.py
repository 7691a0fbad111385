"""dockyard's DDL (``dockyard.sql._schema``): what ``create_all`` makes, and what an older
database lacks, compared on SQLite (PostgreSQL: ``tests/integration/sql/test_db_commands.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy
from sqlalchemy import Connection, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite

from dockyard.sql import metadata
from dockyard.sql._eventsourcing.event_log import event_log_ddl
from dockyard.sql._schema import FUNCTIONS, plan_schema, schema_sql

POSTGRES = postgresql.dialect()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy


@pytest.fixture
def connection() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def _captured_create_all(dialect_name: str) -> list[str]:
    """What ``metadata.create_all`` sends, on a mock engine."""
    sent: list[str] = []

    def executor(sql: object, *_: object, **__: object) -> None:
        sent.append(str(sql.compile(dialect=engine.dialect)).strip())  # type: ignore[attr-defined]

    engine = sqlalchemy.create_mock_engine(f"{dialect_name}://", executor)
    metadata.create_all(engine, checkfirst=False)
    return sent


def _words(statement: str) -> str:
    # DDL() keeps `%` doubled until it runs; IF NOT EXISTS is what the printed DDL adds
    return " ".join(statement.replace("IF NOT EXISTS ", "").replace("%%", "%").split())


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_the_ddl_is_what_create_all_sends(dialect: str) -> None:
    chosen = POSTGRES if dialect == "postgresql" else sqlite.dialect()
    printed = [_words(s) for s in schema_sql(chosen)]
    for statement in _captured_create_all(dialect):
        assert _words(statement) in printed, statement


def test_the_postgresql_ddl_has_the_sequence_functions_and_drops_old_triggers() -> None:
    printed = schema_sql(POSTGRES)
    assert printed[0].startswith("CREATE SEQUENCE IF NOT EXISTS dockyard_events_position AS BIGINT")
    assert [f.create for f in FUNCTIONS] == [s.strip() for s in event_log_ddl[:-1]]
    assert {f.name for f in FUNCTIONS} == {
        "dockyard_log_horizon",
        "dockyard_read_all",
        "dockyard_log_head",
        "dockyard_count_after",
    }
    for function in FUNCTIONS:
        assert function.create in printed
        assert function.body.startswith("\n")
        assert "$$" not in function.body
    assert printed[-4:] == [
        "DROP TRIGGER IF EXISTS dockyard_events_notify ON dockyard_events",
        "DROP FUNCTION IF EXISTS dockyard_notify_events()",
        "DROP TRIGGER IF EXISTS dockyard_outbox_notify ON dockyard_outbox",
        "DROP FUNCTION IF EXISTS dockyard_notify_outbox()",
    ]


def test_the_sqlite_ddl_has_tables_and_indexes_only() -> None:
    printed = schema_sql(sqlite.dialect())
    assert all(
        s.startswith(("CREATE TABLE IF NOT EXISTS", "CREATE INDEX IF NOT EXISTS")) for s in printed
    )
    assert sum(s.startswith("CREATE TABLE") for s in printed) == len(metadata.tables)
    assert sum(s.startswith("CREATE INDEX") for s in printed) == sum(
        len(table.indexes) for table in metadata.tables.values()
    )


def test_the_sqlite_ddl_runs_twice_and_leaves_nothing_to_plan(connection: Connection) -> None:
    for _ in range(2):
        for statement in schema_sql(connection.dialect):
            connection.exec_driver_sql(statement)
    plan = plan_schema(connection)
    assert (plan.tables, plan.steps, plan.problems) == (len(metadata.tables), (), ())


def test_an_empty_database_plans_every_table(connection: Connection) -> None:
    plan = plan_schema(connection)
    assert plan.tables == 0
    assert [str(step) for step in plan.steps] == [
        f"create table {table.name}" for table in metadata.sorted_tables
    ]
    assert not any(step.upgrade_only for step in plan.steps)
    for statement in plan.statements:
        connection.exec_driver_sql(statement)
    assert plan_schema(connection).steps == ()


def test_an_older_database_plans_the_missing_column_and_index(connection: Connection) -> None:
    metadata.create_all(connection)
    connection.exec_driver_sql("ALTER TABLE dockyard_sagas DROP COLUMN last_error")
    connection.exec_driver_sql("DROP INDEX ix_dockyard_sagas_due")
    plan = plan_schema(connection)
    assert [(str(s), s.statements, s.upgrade_only) for s in plan.steps] == [
        (
            "add column dockyard_sagas.last_error",
            ("ALTER TABLE dockyard_sagas ADD COLUMN last_error TEXT",),
            True,
        ),
        (
            "create index ix_dockyard_sagas_due",
            (
                (
                    "CREATE INDEX ix_dockyard_sagas_due ON dockyard_sagas (due_at) "
                    "WHERE status IN ('running', 'compensating')"
                ),
            ),
            True,
        ),
    ]
    assert plan.problems == ()
    for statement in plan.statements:
        connection.exec_driver_sql(statement)
    assert plan_schema(connection).steps == ()


def test_what_no_statement_can_do_is_a_problem(connection: Connection) -> None:
    metadata.create_all(connection)
    connection.exec_driver_sql("ALTER TABLE dockyard_sagas DROP COLUMN step_log")  # NOT NULL
    connection.exec_driver_sql(
        "ALTER TABLE dockyard_inbox ADD COLUMN tenant TEXT NOT NULL DEFAULT 'a'"
    )
    connection.exec_driver_sql("ALTER TABLE dockyard_outbox ADD COLUMN shard INTEGER NOT NULL")
    plan = plan_schema(connection)
    assert plan.steps == ()
    assert plan.problems == (
        (
            "`dockyard_outbox.shard` is not dockyard's and may not be null without a default: "
            "dockyard's inserts will fail. Hint: drop it or give it a default."
        ),
        (
            "`dockyard_sagas.step_log` is missing and may not be null: dockyard does not invent a "
            "value for the rows already there. Hint: add it in a migration of your own (with a "
            "value for existing rows), or recreate the table if it is empty."
        ),
    )


def test_a_nullability_that_differs_is_a_problem(connection: Connection) -> None:
    metadata.create_all(connection)
    connection.exec_driver_sql("DROP TABLE dockyard_projection_leases")
    connection.exec_driver_sql(
        "CREATE TABLE dockyard_projection_leases (name VARCHAR(255) PRIMARY KEY, "
        "owner VARCHAR(255), expires_at FLOAT NOT NULL)"
    )
    assert plan_schema(connection).problems == (
        (
            "`dockyard_projection_leases.owner` may not be null in this version, and not in the "
            "database. Hint: change it in a migration of your own (ALTER COLUMN)."
        ),
    )


def test_a_missing_unique_constraint_is_a_problem(connection: Connection) -> None:
    metadata.create_all(connection)
    connection.exec_driver_sql("DROP TABLE dockyard_inbox")
    connection.exec_driver_sql("DROP TABLE dockyard_outbox_scheduled")
    table = metadata.tables["dockyard_outbox_scheduled"]
    ddl = schema_sql(connection.dialect)
    create = next(s for s in ddl if s.startswith(f"CREATE TABLE IF NOT EXISTS {table.name} "))
    connection.exec_driver_sql(
        create.replace(
            ",\n    CONSTRAINT uq_dockyard_outbox_scheduled_message_id UNIQUE (message_id)", ""
        )
    )
    plan = plan_schema(connection)
    assert [str(step) for step in plan.steps] == [
        "create table dockyard_inbox",
        "create index ix_dockyard_outbox_scheduled_due",
    ]
    assert plan.problems == (
        (
            "`dockyard_outbox_scheduled` lacks the unique constraint "
            "`uq_dockyard_outbox_scheduled_message_id` (message_id). Hint: add it in a migration "
            "of your own, after removing duplicates."
        ),
    )


def test_no_ddl_listener_runs_on_sqlite(connection: Connection) -> None:
    # the functions' DDL hangs on dockyard_events' after_create, for PostgreSQL only
    sent: list[str] = []
    event.listen(connection, "before_cursor_execute", lambda *a: sent.append(a[2]))
    metadata.create_all(connection)
    assert not [s for s in sent if "FUNCTION" in s]
