"""dockyard's schema as statements: the DDL to create it, and what an existing database lacks.

``dockyard db sql|create|upgrade`` and ``dockyard.sql.alembic`` read from here. Beside the
tables of ``metadata`` PostgreSQL has objects a ``MetaData`` diff does not see: the global
log's position sequence and the functions its readers call (``_eventsourcing/event_log.py``),
and the ``NOTIFY`` triggers earlier versions made, which an upgrade drops.

A plan compares the database with ``metadata`` by name: tables, columns (and whether they
may be null), indexes, unique constraints; on PostgreSQL also the sequence, the functions'
bodies and the old triggers. Column *types* are not compared. What it cannot change safely
(a missing ``NOT NULL`` column of a table with rows, or on SQLite, a column whose nullability
differs, a missing unique constraint) becomes a problem that names the fix, never a
statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, inspect, text
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import (
    CreateColumn,
    CreateIndex,
    CreateSequence,
    CreateTable,
    SetColumnComment,
    SetTableComment,
    UniqueConstraint,
)

from dockyard.sql._eventsourcing.event_log import (
    SEQUENCE,
    event_log_ddl,
    lower_bound_sql,
    old_triggers_ddl,
    positions,
)
from dockyard.sql._eventsourcing.tables import events_table
from dockyard.sql._metadata import metadata

__all__ = [
    "FUNCTIONS",
    "OLD_TRIGGERS",
    "PostgresFunction",
    "SchemaPlan",
    "Step",
    "catch_up_sql",
    "plan_schema",
    "postgres_extras_steps",
    "schema_sql",
    "table_ddl",
]


@dataclass(frozen=True, slots=True)
class PostgresFunction:
    """One function of the global log, as ``CREATE OR REPLACE FUNCTION`` and its body."""

    name: str
    create: str

    @property
    def body(self) -> str:
        """What PostgreSQL keeps as the function's source (``pg_proc.prosrc``)."""
        return self.create.split("$$")[1]

    @property
    def drop(self) -> str:
        return f"DROP FUNCTION IF EXISTS {self.name}"


def _function_name(statement: str) -> str:
    head = statement.split("FUNCTION", 1)[1]
    return head.split("(", 1)[0].strip()


_CATCH_UP = event_log_ddl[-1]
FUNCTIONS = tuple(
    PostgresFunction(_function_name(s), s.strip()) for s in event_log_ddl if s is not _CATCH_UP
)
"""The functions readers of the global log call, in the order they are created."""

OLD_TRIGGERS = {
    "dockyard_events_notify": ("dockyard_events", "dockyard_notify_events"),
    "dockyard_outbox_notify": ("dockyard_outbox", "dockyard_notify_outbox"),
}
"""The ``NOTIFY`` triggers of earlier versions: name → (table, trigger function)."""


def catch_up_sql() -> str:
    """Moves the position sequence past the largest position (a no-op when it is ahead)."""
    return _CATCH_UP.strip()


@dataclass(frozen=True, slots=True)
class Step:
    """One change: ``create`` a table, ``add`` a column, ``replace`` a function, …"""

    action: str
    kind: str
    name: str
    statements: tuple[str, ...]
    upgrade_only: bool = False
    """Not a missing object but an older one: ``db create`` leaves it to ``db upgrade``."""

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.name}"


@dataclass(frozen=True, slots=True)
class SchemaPlan:
    """What a database lacks of dockyard's schema: the steps, and what no step can do."""

    dialect: str
    tables: int
    """How many of dockyard's tables the database had."""
    steps: tuple[Step, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def statements(self) -> list[str]:
        return [statement for step in self.steps for statement in step.statements]


def _compiled(element: Any, dialect: Dialect) -> str:
    """The statement as text, indented with spaces and without SQLAlchemy's trailing blanks."""
    lines = str(element.compile(dialect=dialect)).strip().splitlines()
    return "\n".join(line.rstrip().replace("\t", "    ") for line in lines)


def table_ddl(table: Table, dialect: Dialect, *, if_not_exists: bool = False) -> list[str]:
    """``CREATE TABLE`` with its comments and indexes, as ``metadata.create_all`` would."""
    statements = [_compiled(CreateTable(table, if_not_exists=if_not_exists), dialect)]
    if dialect.supports_comments and not dialect.inline_comments:
        if table.comment:
            statements.append(_compiled(SetTableComment(table), dialect))
        statements += [
            _compiled(SetColumnComment(column), dialect)
            for column in table.columns
            if column.comment
        ]
    statements += [
        _compiled(CreateIndex(index, if_not_exists=if_not_exists), dialect)
        for index in sorted(table.indexes, key=lambda index: str(index.name))
    ]
    return statements


def schema_sql(dialect: Dialect) -> list[str]:
    """Every statement of dockyard's schema for ``dialect``, each safe to run again.

    Tables and indexes are created if missing (``IF NOT EXISTS``); on PostgreSQL the sequence
    too, the functions are created or replaced, the sequence is moved past existing events,
    and the triggers of earlier versions are dropped. A script made of these runs on an empty
    database and on one made by this version; it does not add columns to older tables
    (``dockyard db upgrade`` does).
    """
    postgres = dialect.name == "postgresql"
    statements = [_compiled(CreateSequence(positions, if_not_exists=True), dialect)] * postgres
    for table in metadata.sorted_tables:
        statements += table_ddl(table, dialect, if_not_exists=True)
    if postgres:
        statements += [function.create for function in FUNCTIONS]
        statements.append(catch_up_sql())
        statements += list(old_triggers_ddl)
    return statements


def plan_schema(connection: Connection) -> SchemaPlan:
    """Compare the database on ``connection`` with dockyard's schema (runs queries only)."""
    dialect = connection.dialect
    inspector = inspect(connection)
    existing = set(inspector.get_table_names())
    steps: list[Step] = []
    problems: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in existing:
            steps.append(Step("create", "table", table.name, tuple(table_ddl(table, dialect))))
        else:
            _compare_table(connection, table, steps, problems)
    if dialect.name == "postgresql":
        steps += postgres_extras_steps(connection, events_exist=events_table.name in existing)
    had = sum(table.name in existing for table in metadata.sorted_tables)
    return SchemaPlan(dialect.name, had, tuple(steps), tuple(problems))


def _compare_table(
    connection: Connection, table: Table, steps: list[Step], problems: list[str]
) -> None:
    dialect = connection.dialect
    inspector = inspect(connection)
    found = {column["name"]: column for column in inspector.get_columns(table.name)}
    added: set[str] = set()
    for column in table.columns:
        where = f"{table.name}.{column.name}"
        if column.name not in found:
            # PostgreSQL adds a NOT NULL column to a table without rows (no value to invent)
            if (
                column.nullable
                or column.server_default is not None
                or (dialect.name == "postgresql" and _empty(connection, table))
            ):
                spec = _compiled(CreateColumn(column), dialect)
                statements = [f"ALTER TABLE {table.name} ADD COLUMN {spec}"]
                if column.comment and dialect.supports_comments and not dialect.inline_comments:
                    statements.append(_compiled(SetColumnComment(column), dialect))
                steps.append(Step("add", "column", where, tuple(statements), upgrade_only=True))
                added.add(column.name)
            else:
                problems.append(
                    f"`{where}` is missing and may not be null: dockyard does not invent a "
                    "value for the rows already there. Hint: add it in a migration of your "
                    "own (with a value for existing rows), or recreate the table if it is empty."
                )
        elif not column.primary_key and bool(found[column.name]["nullable"]) != column.nullable:
            wanted = "may be null" if column.nullable else "may not be null"
            problems.append(
                f"`{where}` {wanted} in this version, and not in the database. "
                "Hint: change it in a migration of your own (ALTER COLUMN)."
            )
    known = {column.name for column in table.columns}
    for name, reflected in found.items():
        if name not in known and not reflected["nullable"] and reflected.get("default") is None:
            problems.append(
                f"`{table.name}.{name}` is not dockyard's and may not be null without a "
                "default: dockyard's inserts will fail. Hint: drop it or give it a default."
            )
    indexes = {index["name"] for index in inspector.get_indexes(table.name)}
    for index in sorted(table.indexes, key=lambda index: str(index.name)):
        # an index on a column still missing waits for it (its problem is reported above)
        ready = all(c.name in found or c.name in added for c in index.columns)
        if index.name not in indexes and ready:
            create = _compiled(CreateIndex(index), dialect)
            steps.append(Step("create", "index", str(index.name), (create,), upgrade_only=True))
    uniques = {c["name"] for c in inspector.get_unique_constraints(table.name)} | indexes
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint) and constraint.name not in uniques:
            columns = ", ".join(column.name for column in constraint.columns)
            problems.append(
                f"`{table.name}` lacks the unique constraint `{constraint.name}` ({columns}). "
                "Hint: add it in a migration of your own, after removing duplicates."
            )


def postgres_extras_steps(connection: Connection, *, events_exist: bool) -> list[Step]:
    """PostgreSQL: the sequence, the functions, the old triggers (what ``MetaData`` misses)."""
    steps: list[Step] = []
    if not inspect(connection).has_sequence(SEQUENCE):
        create = [_compiled(CreateSequence(positions), connection.dialect)]
        if events_exist:  # a database whose positions did not come from the sequence
            create.append(catch_up_sql())
        steps.append(Step("create", "sequence", SEQUENCE, tuple(create)))
    elif events_exist and _sequence_behind(connection):
        steps.append(Step("catch up", "sequence", SEQUENCE, (catch_up_sql(),), upgrade_only=True))
    found = connection.execute(
        text(
            "SELECT proname, prosrc FROM pg_proc "
            "WHERE pronamespace = current_schema()::regnamespace AND proname = ANY(:names)"
        ),
        {"names": [function.name for function in FUNCTIONS]},
    )
    bodies: dict[str, str] = dict(found.tuples().all())
    for function in FUNCTIONS:
        if function.name not in bodies:
            steps.append(Step("create", "function", function.name, (function.create,)))
        elif _words(bodies[function.name]) != _words(function.body):
            steps.append(
                Step("replace", "function", function.name, (function.create,), upgrade_only=True)
            )
    for trigger, (table, trigger_function) in _old_triggers(connection):
        drops = (
            f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
            f"DROP FUNCTION IF EXISTS {trigger_function}()",
        )
        steps.append(Step("drop", "trigger", trigger, drops, upgrade_only=True))
    return steps


def _empty(connection: Connection, table: Table) -> bool:
    query = f"SELECT NOT EXISTS (SELECT 1 FROM {table.name})"  # noqa: S608 - our table's name
    return bool(connection.exec_driver_sql(query).scalar())


def _words(body: str) -> str:
    """A function's body without its layout: a revision file may indent it (Alembic does)."""
    return " ".join(body.split())


def _sequence_behind(connection: Connection) -> bool:
    behind = connection.execute(
        text(
            f"SELECT max(global_position) >= {lower_bound_sql()} "  # noqa: S608 - our names
            f"FROM {events_table.name}"
        )
    ).scalar()
    return bool(behind)


def _old_triggers(connection: Connection) -> Iterable[tuple[str, tuple[str, str]]]:
    found: Sequence[str] = (
        connection.execute(
            text(
                "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE c.relnamespace = current_schema()::regnamespace AND t.tgname = ANY(:names)"
            ),
            {"names": list(OLD_TRIGGERS)},
        )
        .scalars()
        .all()
    )
    return [(name, OLD_TRIGGERS[name]) for name in sorted(found)]
