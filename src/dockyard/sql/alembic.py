"""dockyard's schema in your own Alembic migrations. Needs ``pip install 'dockyard[alembic]'``.

``target_metadata`` alone gives Alembic dockyard's tables, not what PostgreSQL needs beside
them: the global log's position sequence and the functions its readers call (and, on a
database made by an older dockyard, the ``NOTIFY`` triggers to drop). Importing this module
teaches autogenerate those too: in ``env.py``,

```python
import dockyard.sql.alembic

target_metadata = [app_metadata, dockyard.sql.alembic.metadata]
```

and ``alembic revision --autogenerate`` writes ``op.execute(...)`` calls for what the database
lacks (with their reverse in ``downgrade()``), next to the tables; ``alembic check`` sees
them. The SQL is written into the revision file, so a revision keeps doing what it did when
it was generated. Without autogenerate, call ``postgres_upgrade_sql()`` /
``postgres_downgrade_sql()`` from a hand-written revision. See docs/migrations.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dockyard.exceptions import MissingExtraError

try:
    from alembic.autogenerate import comparators, renderers
    from alembic.autogenerate.api import AutogenContext
    from alembic.operations import ops
except ImportError as missing:
    raise MissingExtraError("dockyard.sql.alembic", "Alembic", "alembic") from missing

from sqlalchemy import MetaData, inspect, text

from dockyard.sql._eventsourcing.event_log import SEQUENCE, positions
from dockyard.sql._eventsourcing.tables import events_table
from dockyard.sql._metadata import metadata
from dockyard.sql._schema import (
    FUNCTIONS,
    OLD_TRIGGERS,
    Step,
    catch_up_sql,
    postgres_extras_steps,
)

__all__ = [
    "DockyardPostgresOp",
    "compare_postgres_objects",
    "metadata",
    "postgres_downgrade_sql",
    "postgres_upgrade_sql",
]


def postgres_upgrade_sql() -> list[str]:
    """PostgreSQL statements that create (or replace) what ``metadata`` does not hold.

    Run them after the tables exist, e.g. ``for s in postgres_upgrade_sql(): op.execute(s)``:
    the position sequence (if missing), the global log's functions, the sequence moved past
    existing events, the ``NOTIFY`` triggers of earlier versions dropped. Each is safe to run
    again.
    """
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateSequence

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
    create = str(CreateSequence(positions, if_not_exists=True).compile(dialect=dialect))
    drops = [
        statement
        for trigger, (table, function) in OLD_TRIGGERS.items()
        for statement in (
            f"DROP TRIGGER IF EXISTS {trigger} ON {table}",
            f"DROP FUNCTION IF EXISTS {function}()",
        )
    ]
    return [create, *(f.create for f in FUNCTIONS), catch_up_sql(), *drops]


def postgres_downgrade_sql() -> list[str]:
    """The reverse of ``postgres_upgrade_sql()``: drop the functions, then the sequence."""
    return [*(f.drop for f in reversed(FUNCTIONS)), f"DROP SEQUENCE IF EXISTS {SEQUENCE}"]


class DockyardPostgresOp(ops.ExecuteSQLOp):
    """What autogenerate found missing of dockyard's PostgreSQL objects: one object's SQL.

    Rendered as plain ``op.execute(...)`` calls with the SQL written out, so the revision
    does not import dockyard; its reverse (for ``downgrade()``) is another one.
    """

    def __init__(
        self,
        action: str,
        kind: str,
        name: str,
        statements: Sequence[str],
        reverse_statements: Sequence[str] = (),
    ) -> None:
        super().__init__("; ".join(statements))
        self.action = action
        self.kind = kind
        self.name = name
        self.statements = tuple(statements)
        self.reverse_statements = tuple(reverse_statements)

    def reverse(self) -> DockyardPostgresOp:
        undo = {"create": "drop", "drop": "create"}.get(self.action, f"undo {self.action}")
        return DockyardPostgresOp(
            undo, self.kind, self.name, self.reverse_statements, self.statements
        )

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return (f"dockyard_{self.action}_{self.kind}".replace(" ", "_"), self.name)


@renderers.dispatch_for(DockyardPostgresOp)
def _render(autogen_context: AutogenContext, op: DockyardPostgresOp) -> list[str]:
    if not op.statements:
        return []
    prefix = autogen_context.opts.get("alembic_module_prefix", "op.")
    lines = [f"# dockyard: {op.action} {op.kind} {op.name}"]
    for statement in op.statements:
        if "\n" in statement and '"""' not in statement and "\\" not in statement:
            lines.append(f'{prefix}execute(\n    """\n{statement.strip()}\n"""\n)')
        else:
            lines.append(f"{prefix}execute({statement!r})")
    return lines


def _holds_dockyard(target: MetaData | Sequence[MetaData] | None) -> bool:
    found = [target] if isinstance(target, MetaData) else list(target or ())
    return any(events_table.name in each.tables for each in found)


try:  # after Alembic's own comparisons, so the SQL comes after the tables in the revision
    from alembic.util import DispatchPriority

    _after_tables = comparators.dispatch_for("schema", priority=DispatchPriority.LAST)
except ImportError:  # Alembic < 1.18: one list, run in the order registered (Alembic's first)
    _after_tables = comparators.dispatch_for("schema")


@_after_tables
def compare_postgres_objects(
    autogen_context: AutogenContext, upgrade_ops: ops.UpgradeOps, schemas: Iterable[str | None]
) -> None:
    """Autogenerate: add what the database lacks of dockyard's PostgreSQL objects.

    Registered with Alembic when this module is imported; it acts when the dialect is
    PostgreSQL and ``target_metadata`` holds dockyard's tables, in the default schema.
    """
    connection = autogen_context.connection
    if connection is None or connection.dialect.name != "postgresql":
        return
    if None not in set(schemas) or not _holds_dockyard(autogen_context.metadata):
        return
    events_exist = inspect(connection).has_table(events_table.name)
    for step in postgres_extras_steps(connection, events_exist=events_exist):
        upgrade_ops.ops.append(
            DockyardPostgresOp(
                step.action,
                step.kind,
                step.name,
                step.statements,
                _reverse(connection, step),
            )
        )


def _reverse(connection: Any, step: Step) -> list[str]:
    """What puts the database back as it was before ``step``."""
    if step.kind == "sequence":
        return [f"DROP SEQUENCE IF EXISTS {SEQUENCE}"] if step.action == "create" else []
    if step.kind == "function":
        if step.action == "create":
            return [f"DROP FUNCTION IF EXISTS {step.name}"]
        return [_definition(connection, "pg_get_functiondef(p.oid)", "pg_proc p", step.name)]
    # an old trigger: its function first, then the trigger that calls it
    table, function = OLD_TRIGGERS[step.name]
    return [
        _definition(connection, "pg_get_functiondef(p.oid)", "pg_proc p", function),
        _definition(
            connection,
            "pg_get_triggerdef(t.oid)",
            "pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid",
            step.name,
            f"t.tgname = :name AND c.relname = '{table}'",
        ),
    ]


def _definition(connection: Any, what: str, source: str, name: str, where: str = "") -> str:
    """``pg_get_functiondef`` / ``pg_get_triggerdef`` of an object of the current schema."""
    condition = where or "p.proname = :name AND p.pronamespace = current_schema()::regnamespace"
    found = connection.execute(
        text(f"SELECT {what} FROM {source} WHERE {condition}"),  # noqa: S608 - our names
        {"name": name},
    ).scalar()
    return str(found).strip()
