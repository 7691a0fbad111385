"""``docs/migrations.md`` works as written, on SQLite and on PostgreSQL.

* Each ``console`` block is a session: its ``$ command`` lines run in bash, in order, in one
  empty folder (the app, ``docs/examples/migrations_app.py``, keeps ``shop.sqlite`` there),
  and the lines up to the next ``$`` must be exactly what the command printed on stdout.
  ``DOCKYARD_UPDATE_GOLDEN=1`` writes what they print into the page instead (review the diff).
* The Alembic recipe: ``alembic init -t async migrations``, the page's ``env.py``, then the
  ``sh`` block's commands, must leave ``alembic check`` and ``dockyard db upgrade`` with
  nothing to do, and ``alembic downgrade base`` with none of dockyard's objects. On
  PostgreSQL the revision must hold what the ``text`` block shows, and the hand-written
  revision (``postgres_upgrade_sql``) must complete a project whose first revision was made
  from ``dockyard.sql.metadata`` alone.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy

from alembic_project import APP, PAGE, Project, page_file, postgres_database, run
from services import POSTGRES_URL

UPDATE = os.environ.get("DOCKYARD_UPDATE_GOLDEN") == "1"
BLOCK = re.compile(
    r"^```(?P<language>console|sh|text)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL
)
TEXT = PAGE.read_text(encoding="utf-8")
UP_TO_DATE = "up to date: nothing to change (11 tables)\n"
NO_CHANGES = "No new upgrade operations detected.\n"


@dataclass(frozen=True, slots=True)
class Shown:
    command: str
    output: str


def blocks(language: str) -> list[str]:
    return [b["body"] for b in BLOCK.finditer(TEXT) if b["language"] == language]


def sessions(body: str) -> list[Shown]:
    assert body.startswith("$ "), body
    found = []
    for session in re.split(r"^(?=\$ )", body, flags=re.MULTILINE):
        if session:
            command, _, output = session[2:].partition("\n")
            found.append(Shown(command, output))
    return found


def test_the_page_shows_each_command_and_the_recipe() -> None:
    commands = [s.command for body in blocks("console") for s in sessions(body)]
    for name in ("sql", "create", "upgrade"):
        assert any(c.startswith(f"dockyard db {name} {APP}") for c in commands), name
    assert "import dockyard.sql.alembic" in page_file("migrations/env.py")
    assert "postgres_upgrade_sql()" in page_file("migrations/versions/dockyard_postgres.py")
    assert "(migrations.md)" in (PAGE.parent / "cli.md").read_text(encoding="utf-8")


def test_the_sessions_print_what_the_page_shows(tmp_path: Path) -> None:
    text = TEXT
    edits: list[tuple[int, int, str]] = []
    for block in BLOCK.finditer(TEXT):
        if block["language"] != "console":
            continue
        new = ""
        for shown in sessions(block["body"]):  # in page order: each session builds on the last
            printed = run(shown.command, cwd=tmp_path, check=False).stdout
            if not UPDATE:
                assert printed == shown.output, f"docs/migrations.md: `{shown.command}`"
            new += f"$ {shown.command}\n{printed}"
        edits.append((block.start("body"), block.end("body"), new))
    if UPDATE:
        for start, end, new in reversed(edits):
            text = text[:start] + new + text[end:]
        PAGE.write_text(text, encoding="utf-8")


def _recipe(project: Project) -> None:
    """The ``sh`` block, then what the page says of the result."""
    (commands,) = blocks("sh")
    lines = [line for line in commands.splitlines() if line.strip()]
    assert lines == [
        'alembic revision --autogenerate -m "dockyard"',
        "alembic upgrade head",
        "alembic check",
    ]
    for line in lines[:-1]:
        project.run(line)
    assert project.run(lines[-1]).stdout == NO_CHANGES
    assert project.run(f"dockyard db upgrade {APP}").stdout == UP_TO_DATE


def test_the_alembic_recipe_on_sqlite(tmp_path: Path) -> None:
    project = Project.make(tmp_path, "sqlite+aiosqlite:///shop.sqlite")
    _recipe(project)
    project.run("alembic downgrade base")
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'shop.sqlite'}")
    try:
        assert sqlalchemy.inspect(engine).get_table_names() == ["alembic_version"]
    finally:
        engine.dispose()


def _postgres_objects(url: str, tmp_path: Path) -> dict[str, list[str]]:
    script = (
        "SELECT json_build_object("
        "'tables', (SELECT coalesce(json_agg(tablename ORDER BY tablename), '[]') FROM pg_tables"
        " WHERE schemaname = 'public'),"
        "'functions', (SELECT coalesce(json_agg(proname ORDER BY proname), '[]') FROM pg_proc"
        " WHERE pronamespace = 'public'::regnamespace),"
        "'sequences', (SELECT coalesce(json_agg(relname ORDER BY relname), '[]') FROM pg_class"
        " WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace))"
    )
    plain = url.replace("postgresql+asyncpg://", "postgresql://")
    printed = run(f'psql -Atq "{plain}" -c "{script}"', cwd=tmp_path).stdout
    found: dict[str, list[str]] = json.loads(printed)
    return found


@pytest.mark.postgres
@pytest.mark.slow
def test_the_alembic_recipe_on_postgresql(tmp_path: Path) -> None:
    with postgres_database(POSTGRES_URL) as url:
        project = Project.make(tmp_path, url)
        _recipe(project)
        (revision,) = project.revisions()
        generated = revision.read_text(encoding="utf-8")
        (excerpt,) = blocks("text")
        for line in excerpt.splitlines():
            assert line in generated.splitlines(), line
        assert generated.index("op.create_table('dockyard_events'") < generated.index(
            "# dockyard: create function dockyard_read_all"
        )
        assert "import dockyard" not in generated
        objects = _postgres_objects(url, tmp_path)
        assert "dockyard_read_all" in objects["functions"]
        assert "dockyard_events_position" in objects["sequences"]
        project.run("alembic downgrade base")
        assert _postgres_objects(url, tmp_path) == {
            "tables": ["alembic_version"],
            "functions": [],
            "sequences": [],
        }


@pytest.mark.postgres
@pytest.mark.slow
def test_a_hand_written_revision_completes_a_plain_metadata_project(tmp_path: Path) -> None:
    # what the earlier recipe made: target_metadata = dockyard.sql.metadata, no sequence
    plain_env = (
        page_file("migrations/env.py")
        .replace(
            "import dockyard.sql.alembic  # autogenerate then also sees the sequence and functions",
            "import dockyard.sql",
        )
        .replace("dockyard.sql.alembic.metadata", "dockyard.sql.metadata")
    )
    assert "dockyard.sql.alembic" not in plain_env
    with postgres_database(POSTGRES_URL) as url:
        project = Project.make(tmp_path, url, plain_env)
        project.run('alembic revision --autogenerate -m "tables"')
        project.run("alembic upgrade head")
        missing = project.run(f"dockyard db upgrade {APP} --sql").stdout
        assert "CREATE SEQUENCE dockyard_events_position" in missing
        assert "CREATE OR REPLACE FUNCTION dockyard_read_all" in missing
        (tables,) = project.revisions()
        first = re.search(r"^revision: str = '(\w+)'", tables.read_text(), re.MULTILINE)
        assert first is not None
        hand_written = page_file("migrations/versions/dockyard_postgres.py").replace(
            "down_revision = None", f"down_revision = {first[1]!r}"
        )
        (tables.parent / "dockyard_postgres.py").write_text(hand_written)
        project.run("alembic upgrade head")
        assert project.run(f"dockyard db upgrade {APP}").stdout == UP_TO_DATE
        project.run(f"alembic downgrade {first[1]}")
        assert "dockyard_read_all" not in _postgres_objects(url, tmp_path)["functions"]
