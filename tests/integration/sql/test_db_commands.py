"""``dockyard db`` on real PostgreSQL, each test in a database of its own (dropped after).

The real commands run in subprocesses against ``docs/examples/migrations_app.py`` (its URL from
``DATABASE_URL``); outputs are compared with ``golden/`` (``DOCKYARD_UPDATE_GOLDEN=1`` writes
them). After each way of making the schema — ``dockyard db sql | psql``, ``dockyard db
create``, ``dockyard db upgrade`` of an older database — ``dockyard db upgrade`` and an Alembic
autogenerate (``alembic check``, with docs/migrations.md's ``env.py``) find nothing to do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from alembic_project import APP, Project, postgres_database
from services import POSTGRES_URL, require_program

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("DOCKYARD_UPDATE_GOLDEN") == "1"
UP_TO_DATE = "up to date: nothing to change (11 tables)\n"
NO_CHANGES = "No new upgrade operations detected.\n"


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no golden/{name}: run with DOCKYARD_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"golden/{name} differs"


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """An Alembic project (no revisions yet) on a PostgreSQL database of its own."""
    with postgres_database(POSTGRES_URL) as url:
        yield Project.make(tmp_path, url)


def psql(project: Project, sql: str) -> str:
    """Run ``sql`` with ``psql`` on the project's database; what it printed (unaligned)."""
    require_program("psql", "apt-get install postgresql-client")
    plain = project.url.replace("postgresql+asyncpg://", "postgresql://")
    script = project.folder / "script.sql"
    script.write_text(sql)
    return project.run(f'psql -X -Atq -v ON_ERROR_STOP=1 "{plain}" -f script.sql').stdout


def nothing_left(project: Project) -> None:
    assert project.run(f"dockyard db create {APP}").stdout == (
        "nothing to create: 11 tables there already\n"
    )
    assert project.run(f"dockyard db upgrade {APP}").stdout == UP_TO_DATE
    assert project.run("alembic check").stdout == NO_CHANGES
    # the functions work: the log is readable (empty here or not)
    assert psql(project, "SELECT count(*) >= 0 FROM dockyard_read_all(0, 10, NULL);") == "t\n"


def test_the_printed_ddl_runs_in_psql_twice(project: Project) -> None:
    require_program("psql", "apt-get install postgresql-client")
    plain = project.url.replace("postgresql+asyncpg://", "postgresql://")
    for _ in range(2):
        project.run(f'dockyard db sql {APP} | psql -X -q -v ON_ERROR_STOP=1 "{plain}" >/dev/null')
    nothing_left(project)


def test_create_then_upgrade_changes_nothing(project: Project) -> None:
    golden("db_create_postgresql.txt", project.run(f"dockyard db create {APP}").stdout)
    nothing_left(project)
    report = json.loads(project.run(f"dockyard db upgrade {APP} --json").stdout)
    assert (report["ok"], report["upgraded"], report["problems"]) == (True, [], [])
    assert report["database"].startswith("postgresql+asyncpg://postgres@")


OLDER = """
INSERT INTO dockyard_events (global_position, event_id, stream_id, stream_version, type_name,
    schema_version, data, occurred_at, recorded_at)
SELECT n, gen_random_uuid(), 'Order-1', n, 'OrderPlaced', 1, '\\x7b7d', now(), now()
FROM generate_series(1, 3) n;
DROP SEQUENCE dockyard_events_position;
ALTER TABLE dockyard_projection_checkpoints DROP COLUMN reset_at;
DROP INDEX ix_dockyard_outbox_dead;
DROP TABLE dockyard_sagas;
CREATE OR REPLACE FUNCTION dockyard_count_after(after bigint) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$ BEGIN RETURN 0; END $$;
CREATE FUNCTION dockyard_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_notify('dockyard_outbox', ''); RETURN NULL; END $$;
CREATE TRIGGER dockyard_outbox_notify AFTER INSERT ON dockyard_outbox
FOR EACH STATEMENT EXECUTE FUNCTION dockyard_notify_outbox();
"""
"""What an older dockyard left: events numbered without the sequence, a column, an index and a
table missing, an older function, the NOTIFY trigger of an earlier version."""


def test_upgrade_brings_an_older_database_up(project: Project) -> None:
    project.run(f"dockyard db create {APP}")
    psql(project, OLDER)
    created = project.run(f"dockyard db create {APP}", check=False)
    assert created.returncode == 1
    golden("db_create_older_postgresql.txt", created.stdout)
    assert project.run("alembic check", check=False).returncode != 0  # it sees the differences
    golden("db_upgrade_postgresql.txt", project.run(f"dockyard db upgrade {APP}").stdout)
    nothing_left(project)
    # the sequence went past the events already there
    assert psql(project, "SELECT nextval('dockyard_events_position');") == "4\n"
    assert psql(project, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'dockyard%';") == (
        "0\n"
    )


def test_an_alembic_revision_upgrades_an_older_database_too(project: Project) -> None:
    project.run(f"dockyard db create {APP}")
    psql(project, OLDER)
    project.run('alembic revision --autogenerate -m "older"')
    (revision,) = project.revisions()
    generated = revision.read_text(encoding="utf-8")
    for line in (
        "    # dockyard: create sequence dockyard_events_position",
        "    # dockyard: replace function dockyard_count_after",
        "    # dockyard: drop trigger dockyard_outbox_notify",
        "    op.execute('DROP TRIGGER IF EXISTS dockyard_outbox_notify ON dockyard_outbox')",
        # downgrade() puts the older objects back as they were
        "    # dockyard: create trigger dockyard_outbox_notify",
        "    # dockyard: undo replace function dockyard_count_after",
    ):
        assert line in generated.splitlines(), line
    project.run("alembic upgrade head")
    assert project.run("alembic check").stdout == NO_CHANGES
    assert project.run(f"dockyard db upgrade {APP}").stdout == UP_TO_DATE
    assert psql(project, "SELECT nextval('dockyard_events_position');") == "4\n"
    project.run("alembic downgrade base")
    count_after = "SELECT prosrc FROM pg_proc WHERE proname = 'dockyard_count_after';"
    assert psql(project, count_after).split() == ["BEGIN", "RETURN", "0;", "END"]
    assert psql(project, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'dockyard%';") == (
        "1\n"
    )


def test_a_statement_the_database_refuses_is_one_line_and_changes_nothing(
    project: Project,
) -> None:
    project.run(f"dockyard db create {APP}")
    # a function of the same name whose result type CREATE OR REPLACE cannot change
    psql(
        project,
        "DROP FUNCTION dockyard_log_horizon; DROP INDEX ix_dockyard_outbox_dead;"
        "CREATE FUNCTION dockyard_log_horizon() RETURNS integer LANGUAGE sql AS 'SELECT 1';",
    )
    result = project.run(f"dockyard db upgrade {APP}", check=False)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        "error: the database refused to replace function dockyard_log_horizon: cannot change "
        "return type of existing function (nothing was changed; --debug shows the statement). "
        "Hint: drop it (DROP FUNCTION dockyard_log_horizon) and run the command again; "
        "dockyard creates it anew.\n"
    )
    # one transaction: the index before it was not created either
    index = "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_dockyard_outbox_dead';"
    assert psql(project, index) == "0\n"
    psql(project, "DROP FUNCTION dockyard_log_horizon;")
    project.run(f"dockyard db upgrade {APP}")
    nothing_left(project)


def test_upgrade_adds_not_null_columns_to_empty_tables_and_catches_the_sequence_up(
    project: Project,
) -> None:
    project.run(f"dockyard db create {APP}")
    psql(
        project,
        """
        INSERT INTO dockyard_events (global_position, event_id, stream_id, stream_version,
            type_name, schema_version, data, occurred_at, recorded_at)
        SELECT n, gen_random_uuid(), 'Order-1', n, 'OrderPlaced', 1, '\\x7b7d', now(), now()
        FROM generate_series(1, 3) n;
        SELECT setval('dockyard_events_position', 1);
        ALTER TABLE dockyard_projection_leases DROP COLUMN owner;
        ALTER TABLE dockyard_inbox DROP COLUMN handled_at;
        INSERT INTO dockyard_inbox (message_id, handler) VALUES ('m-1', 'billing');
        """,
    )
    result = project.run(f"dockyard db upgrade {APP}", check=False)
    assert result.returncode == 1
    assert result.stdout == (
        "added column dockyard_projection_leases.owner\n"
        "caught up sequence dockyard_events_position\n"
        "not upgraded: `dockyard_inbox.handled_at` is missing and may not be null: dockyard "
        "does not invent a value for the rows already there. Hint: add it in a migration of "
        "your own (with a value for existing rows), or recreate the table if it is empty.\n"
    )
    assert psql(project, "SELECT nextval('dockyard_events_position');") == "4\n"
    psql(project, "DELETE FROM dockyard_inbox;")  # now there is no row to invent a value for
    assert project.run(f"dockyard db upgrade {APP}").stdout == (
        "added column dockyard_inbox.handled_at\n"
        "created index ix_dockyard_inbox_handled\n"  # waited for its column
    )
    nothing_left(project)
