"""``dockyard db sql|create|upgrade``: dockyard's tables (and PostgreSQL's extras) for an app.

The app is imported and built, never started: its ``SqlModule`` says which database (and so
which dialect). ``sql`` prints the DDL without connecting; ``create`` and ``upgrade`` connect,
compare the database with dockyard's schema (``dockyard.sql._schema``) and run what is
missing in one transaction. What no statement can change safely is reported, never guessed
at: see docs/migrations.md.
"""

from __future__ import annotations

import enum
import typing
from typing import Annotated

import typer

from dockyard.cli._commands import cli
from dockyard.cli._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    AppArgument,
    DebugOption,
    JsonOption,
    emit_json,
    fail,
    load_or_exit,
    run,
)
from dockyard.exceptions import DockyardError

if typing.TYPE_CHECKING:
    from dockyard.sql import Database
    from dockyard.sql._schema import SchemaPlan, Step

__all__ = ["db"]

db = typer.Typer(
    name="db",
    help="Create, upgrade or print dockyard's tables in an app's database.",
    no_args_is_help=True,
)
cli.add_typer(db)


class Dialect(enum.StrEnum):
    postgresql = "postgresql"
    sqlite = "sqlite"


UrlOption = Annotated[
    str | None,
    typer.Option(help="Connect here instead of the app's URL (a role allowed to change tables)."),
]

_DONE = {
    "create": "created",
    "add": "added",
    "replace": "replaced",
    "drop": "dropped",
    "catch up": "caught up",
}
_LOCK = "SELECT pg_advisory_xact_lock(hashtext('dockyard db'))"
"""Two ``dockyard db`` runs on one PostgreSQL database take turns."""


def _database(app: str, url: str | None, *, debug: bool) -> Database:
    """The app's database (or one at ``url``); exit 2 when the app has none."""
    from dockyard.sql import Database
    from dockyard.sql._module import database_of

    loaded = load_or_exit(app, debug=debug)
    database: Database | None = None
    if url is not None:
        try:
            database = Database(url)
        except DockyardError as error:
            fail(error, code=EXIT_USAGE, debug=debug)
    else:
        database = database_of(loaded)
    if database is None:
        fail(
            f"{app} has no SQL database: none of its modules imports "
            "`SqlModule.register(url=...)`. Hint: import it, or pass --url.",
            code=EXIT_USAGE,
        )
    if database.dialect == "sqlite" and database.engine.url.database in (None, "", ":memory:"):
        fail(
            "an in-memory SQLite database lives and dies with its process: there is nothing "
            "to create or upgrade from here. Hint: give the app a file "
            "(`sqlite:///app.sqlite`), or pass --url.",
            code=EXIT_USAGE,
        )
    return database


@db.command()
def sql(
    app: AppArgument,
    dialect: Annotated[
        Dialect | None,
        typer.Option(help="Print for this dialect instead of the app's database."),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Print dockyard's DDL for the app's database (nothing connects).

    Every dockyard table with its indexes and comments, and on PostgreSQL the global log's
    position sequence and functions, as one transaction that `psql` (or `sqlite3`) runs as
    is. Each statement is safe to run again; columns missing from older tables are
    `dockyard db upgrade`'s job.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    from dockyard.sql._module import database_of
    from dockyard.sql._schema import schema_sql

    loaded = load_or_exit(app, debug=debug)
    if dialect is None:
        database = database_of(loaded)
        if database is None:
            fail(
                f"{app} has no SQL database: none of its modules imports "
                "`SqlModule.register(url=...)`. Hint: pass --dialect postgresql or sqlite.",
                code=EXIT_USAGE,
            )
        chosen = database.sqlalchemy_dialect
    elif dialect is Dialect.postgresql:
        chosen = postgresql.dialect()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
    else:
        chosen = sqlite.dialect()
    typer.echo(f"-- dockyard's schema ({chosen.name}); safe to run again.")
    typer.echo("BEGIN;\n")
    for statement in schema_sql(chosen):
        typer.echo(f"{statement};\n")
    typer.echo("COMMIT;")


@db.command()
def create(
    app: AppArgument,
    url: UrlOption = None,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Create dockyard's missing tables (and PostgreSQL's sequence and functions).

    Safe to run again: it creates only what is missing and says what it created. A table
    that exists but is older than this version is left alone: the command then exits 1
    and names `dockyard db upgrade`.
    """
    database = _database(app, url, debug=debug)
    plan, done = _run_plan(database, upgrade=False, debug=debug)
    left = [step for step in plan.steps if step not in done]
    older = bool(left or plan.problems)
    if json_output:
        emit_json(
            {
                "ok": not older,
                "app": app,
                "database": _shown_url(database),
                "created": [_as_dict(step) for step in done],
                "left_for_upgrade": [_as_dict(step) for step in left],
                "problems": list(plan.problems),
            }
        )
    else:
        for step in done:
            typer.echo(f"{_DONE[step.action]} {step.kind} {step.name}")
        if not done:
            typer.echo(f"nothing to create: {_counted(plan.tables, 'table')} there already")
        if older:
            count = len(left) + len(plan.problems)
            typer.echo(
                f"the database has an older schema ({count} difference"
                f"{'s' if count != 1 else ''}): run `dockyard db upgrade {app}`"
            )
    if older:
        raise typer.Exit(EXIT_FAILED)


@db.command()
def upgrade(
    app: AppArgument,
    url: UrlOption = None,
    sql_only: Annotated[
        bool, typer.Option("--sql", help="Print the statements instead of running them.")
    ] = False,
    json_output: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Bring an existing database up to this version's schema.

    Creates missing tables, indexes, the sequence and functions, adds missing columns that
    may be null (or any, to an empty PostgreSQL table), replaces functions whose body
    changed and drops the NOTIFY triggers of earlier versions, in one transaction. What it
    cannot change safely (a NOT NULL column for a table with rows, a nullability or unique
    constraint that differs) is listed and left alone: the command then exits 1. Column
    types are not compared.
    """
    database = _database(app, url, debug=debug)
    plan, done = _run_plan(database, upgrade=True, debug=debug, apply=not sql_only)
    if sql_only:
        typer.echo(f"-- dockyard db upgrade {app}: {_counted(len(plan.steps), 'change')}")
        for problem in plan.problems:
            typer.echo(f"-- not upgraded: {problem}")
        if plan.steps:
            typer.echo("BEGIN;\n")
            for statement in plan.statements:
                typer.echo(f"{statement};\n")
            typer.echo("COMMIT;")
    elif json_output:
        emit_json(
            {
                "ok": not plan.problems,
                "app": app,
                "database": _shown_url(database),
                "upgraded": [_as_dict(step) for step in done],
                "problems": list(plan.problems),
            }
        )
    else:
        for step in done:
            typer.echo(f"{_DONE[step.action]} {step.kind} {step.name}")
        if not done:
            typer.echo(f"up to date: nothing to change ({_counted(plan.tables, 'table')})")
        for problem in plan.problems:
            typer.echo(f"not upgraded: {problem}")
    if plan.problems:
        raise typer.Exit(EXIT_FAILED)


def _run_plan(
    database: Database, *, upgrade: bool, debug: bool, apply: bool = True
) -> tuple[SchemaPlan, list[Step]]:
    """Compare the database with the schema and run the steps ``upgrade`` allows."""
    from sqlalchemy.exc import SQLAlchemyError

    from dockyard.sql._errors import unavailable_as_store_error
    from dockyard.sql._schema import plan_schema

    running: list[Step] = []  # the step a refusal interrupted, for the message

    async def work() -> tuple[SchemaPlan, list[Step]]:
        try:
            with unavailable_as_store_error("change dockyard's tables"):
                async with database.engine.begin() as connection:
                    if connection.dialect.name == "postgresql":
                        await connection.exec_driver_sql(_LOCK)
                    plan = await connection.run_sync(plan_schema)
                    steps = [s for s in plan.steps if upgrade or not s.upgrade_only]
                    if apply:
                        for step in steps:
                            running[:] = [step]
                            for statement in step.statements:
                                await connection.exec_driver_sql(statement)
                    return plan, steps if apply else []
        finally:
            await database.dispose()

    try:
        return run(work)
    except DockyardError as error:  # the database did not answer
        fail(error, code=EXIT_FAILED, debug=debug)
    except SQLAlchemyError as error:  # it answered, and refused
        if debug:
            raise
        fail(_refused(error, running[0] if running else None), code=EXIT_FAILED)


def _refused(error: Exception, step: Step | None) -> str:
    """One line: what the database refused, during which step, and what to do."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    reason = lines[0] if lines else type(cause).__name__
    during = f" to {step.action} {step.kind} {step.name}" if step is not None else ""
    hint = ""
    if step is not None and step.kind == "function" and "return type" in reason:
        hint = (
            f" Hint: drop it (DROP FUNCTION {step.name}) and run the command again; "
            "dockyard creates it anew."
        )
    return (
        f"the database refused{during}: {reason} (nothing was changed; "
        f"--debug shows the statement).{hint}"
    )


def _as_dict(step: Step) -> dict[str, str]:
    return {"action": step.action, "kind": step.kind, "name": step.name}


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _shown_url(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=True)
