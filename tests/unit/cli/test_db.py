"""``dockyard db sql|create|upgrade``: the real command, in a subprocess, on SQLite.

The app (``apps/db_app.py``, copied as ``db_app.py`` into a folder of the test's own) keeps its
database in ``shop.sqlite`` there. Outputs that do not depend on the machine are compared with
their file in ``golden/`` (``DOCKYARD_UPDATE_GOLDEN=1`` writes them; read the diff). PostgreSQL
runs of the same commands: ``tests/integration/sql/test_db_commands.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from alembic_project import Project
from warm_processes import warm_processes

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("DOCKYARD_UPDATE_GOLDEN") == "1"
APP = "db_app:app"


_PYTHONPATH = os.pathsep.join(sys.path)


def dockyard(*args: str, cwd: Path, url: str | None = None) -> subprocess.CompletedProcess[str]:
    """``dockyard ARGS`` as a user runs it, with this test run's interpreter and paths (a new
    process, forked from a warm one: ``tests/warm_processes.py``)."""
    env = {**os.environ, "PYTHONPATH": _PYTHONPATH}
    env.pop("DOCKYARD_DB_URL", None)
    if url is not None:
        env["DOCKYARD_DB_URL"] = url
    return warm_processes(_PYTHONPATH).run(["dockyard", *args], env=env, cwd=cwd)


def golden(name: str, text: str) -> None:
    """``text`` must be the file ``golden/name`` (written instead under the update flag)."""
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden/{name}: run with DOCKYARD_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"golden/{name} differs"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(HERE / "apps" / "db_app.py", tmp_path / "db_app.py")
    return tmp_path


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return result.stdout


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_sql_prints_the_golden_ddl(folder: Path, dialect: str) -> None:
    golden(
        f"db_sql_{dialect}.sql", ok(dockyard("db", "sql", APP, "--dialect", dialect, cwd=folder))
    )


def test_sql_without_a_dialect_is_the_apps(folder: Path) -> None:
    printed = ok(dockyard("db", "sql", APP, cwd=folder))
    assert printed == (GOLDEN / "db_sql_sqlite.sql").read_text(encoding="utf-8")
    assert not (folder / "shop.sqlite").exists()  # nothing connected


def test_the_printed_sqlite_ddl_runs_twice_and_leaves_nothing_to_do(folder: Path) -> None:
    script = ok(dockyard("db", "sql", APP, cwd=folder))
    with sqlite3.connect(folder / "shop.sqlite") as connection:
        connection.executescript(script)
        connection.executescript(script)
    assert (
        ok(dockyard("db", "create", APP, cwd=folder))
        == "nothing to create: 11 tables there already\n"
    )
    assert (
        ok(dockyard("db", "upgrade", APP, cwd=folder))
        == "up to date: nothing to change (11 tables)\n"
    )


def test_create_then_create_again_then_upgrade(folder: Path) -> None:
    golden("db_create_sqlite.txt", ok(dockyard("db", "create", APP, cwd=folder)))
    assert ok(dockyard("db", "create", APP, cwd=folder)) == (
        "nothing to create: 11 tables there already\n"
    )
    assert ok(dockyard("db", "upgrade", APP, cwd=folder)) == (
        "up to date: nothing to change (11 tables)\n"
    )
    assert json.loads(ok(dockyard("db", "upgrade", APP, "--json", cwd=folder))) == {
        "ok": True,
        "app": APP,
        "database": "sqlite+aiosqlite:///shop.sqlite",
        "upgraded": [],
        "problems": [],
    }


def test_create_json_lists_what_it_created(folder: Path) -> None:
    report = json.loads(ok(dockyard("db", "create", APP, "--json", cwd=folder)))
    assert report["ok"] is True
    assert [c["name"] for c in report["created"]][:2] == [
        "dockyard_events",
        "dockyard_idempotency_keys",
    ]
    assert {c["kind"] for c in report["created"]} == {"table"}
    assert report["left_for_upgrade"] == []


def _make_older(path: Path) -> None:
    """What an older dockyard left: a table, a column, an index missing."""
    with sqlite3.connect(path) as connection:
        connection.executescript(
            """
            DROP TABLE dockyard_sagas;
            ALTER TABLE dockyard_projection_checkpoints DROP COLUMN reset_at;
            DROP INDEX ix_dockyard_outbox_dead;
            """
        )


def test_upgrade_brings_an_older_schema_up(folder: Path) -> None:
    ok(dockyard("db", "create", APP, cwd=folder))
    _make_older(folder / "shop.sqlite")
    created = dockyard("db", "create", APP, cwd=folder)
    assert (created.returncode, created.stdout) == (
        1,
        (
            "created table dockyard_sagas\n"
            "the database has an older schema (2 differences): "
            "run `dockyard db upgrade db_app:app`\n"
        ),
    )
    golden("db_upgrade_sqlite.sql", ok(dockyard("db", "upgrade", APP, "--sql", cwd=folder)))
    golden("db_upgrade_sqlite.txt", ok(dockyard("db", "upgrade", APP, cwd=folder)))
    assert ok(dockyard("db", "upgrade", APP, cwd=folder)) == (
        "up to date: nothing to change (11 tables)\n"
    )
    # Alembic's autogenerate (docs/migrations.md's env.py) finds nothing left either
    project = Project.make(folder, "sqlite+aiosqlite:///shop.sqlite")
    assert project.run("alembic check").stdout == "No new upgrade operations detected.\n"


def test_upgrade_says_what_it_cannot_do(folder: Path) -> None:
    ok(dockyard("db", "create", APP, cwd=folder))
    with sqlite3.connect(folder / "shop.sqlite") as connection:
        connection.execute("ALTER TABLE dockyard_projection_checkpoints DROP COLUMN attempts")
    result = dockyard("db", "upgrade", APP, cwd=folder)
    assert result.returncode == 1
    assert result.stdout == (
        "up to date: nothing to change (11 tables)\n"
        "not upgraded: `dockyard_projection_checkpoints.attempts` is missing and may not be "
        "null: dockyard does not invent a value for the rows already there. Hint: add it in a "
        "migration of your own (with a value for existing rows), or recreate the table if it "
        "is empty.\n"
    )
    report = json.loads(dockyard("db", "upgrade", APP, "--json", cwd=folder).stdout)
    assert report["ok"] is False
    assert len(report["problems"]) == 1


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (
            ["db", "create", "db_app:no_database"],
            2,
            (
                "error: db_app:no_database has no SQL database: none of its modules imports "
                "`SqlModule.register(url=...)`. Hint: import it, or pass --url."
            ),
        ),
        (
            ["db", "sql", "db_app:no_database"],
            2,
            (
                "error: db_app:no_database has no SQL database: none of its modules imports "
                "`SqlModule.register(url=...)`. Hint: pass --dialect postgresql or sqlite."
            ),
        ),
        (
            ["db", "upgrade", "no_such_module:app"],
            2,
            (
                "error: Cannot load the app `no_such_module:app`: importing `no_such_module` "
                "failed: No module named 'no_such_module'. Hint: "
            ),
        ),
        (
            ["db", "upgrade", APP, "--url", "mysql://root@localhost/shop"],
            2,
            None,
        ),
        (
            ["db", "create", APP, "--url", "postgresql://postgres@127.0.0.1:9/nowhere"],
            1,
            None,
        ),
        (
            ["db", "upgrade", APP, "--url", "sqlite://"],
            2,
            (
                "error: an in-memory SQLite database lives and dies with its process: there is "
                "nothing to create or upgrade from here."
            ),
        ),
    ],
    ids=[
        "no-database",
        "sql-no-database",
        "no-module",
        "unsupported-url",
        "unreachable",
        "in-memory",
    ],
)
def test_errors_are_one_line(folder: Path, args: list[str], code: int, error: str | None) -> None:
    result = dockyard(*args, cwd=folder)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ")
    if error is not None:
        assert first.startswith(error)
    assert result.stdout == ""
