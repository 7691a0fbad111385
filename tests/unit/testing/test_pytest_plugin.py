"""The pytest plugin, tried from outside as a user would: docs/testing.md's tests, run by pytest.

Each run is a pytest of its own (``pytester``, in a subprocess) on the files docs/testing.md
shows. Its second test asserts the outbox row its first test wrote is gone.
"""

import asyncio
import re
from pathlib import Path

import asyncpg
import pytest

from services import POSTGRES_URL

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[3] / "docs" / "testing.md"
FENCE = re.compile(r"^```python\n# (\S+\.py)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INI = "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"

RECORD_SCHEMA = """
from pathlib import Path

from dockyard.testing.pytest import IsolatedDatabase


def test_record_where_it_ran(dockyard_sql: IsolatedDatabase) -> None:
    with (Path.cwd() / "schemas.txt").open("a") as schemas:
        schemas.write(f"{dockyard_sql.schema}\\n")
"""

SHARED_DATABASE = """
import pytest

from dockyard.testing.pytest import IsolatedDatabase

pytest_plugins = ["dockyard.testing.pytest"]


@pytest.fixture(scope="session")
def dockyard_sql(tmp_path_factory: pytest.TempPathFactory) -> IsolatedDatabase:
    # what the plugin saves users from: one database for the whole run
    return IsolatedDatabase(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'shared.db'}")
"""


def _docs_files() -> dict[str, str]:
    return dict(FENCE.findall(DOCS.read_text(encoding="utf-8")))


@pytest.fixture
def user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A project with the conftest.py and test_shop.py of docs/testing.md."""
    monkeypatch.delenv("DOCKYARD_TEST_DATABASE_URL", raising=False)
    files = _docs_files()
    assert set(files) == {"conftest.py", "test_shop.py"}
    assert 'pytest_plugins = ["dockyard.testing.pytest"]' in files["conftest.py"]
    for name, code in files.items():
        (pytester.path / name).write_text(code, encoding="utf-8")
    pytester.makefile(".py", test_where=RECORD_SCHEMA)
    return pytester


def _run(project: pytest.Pytester) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly")


def _schemas(project: pytest.Pytester) -> list[str]:
    return (project.path / "schemas.txt").read_text(encoding="utf-8").split()


async def _existing(schemas: list[str]) -> list[str]:
    connection = await asyncpg.connect(POSTGRES_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        rows = await connection.fetch(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name = ANY($1)",
            schemas,
        )
    finally:
        await connection.close()
    return [row["schema_name"] for row in rows]


def test_on_sqlite_a_row_written_by_one_test_is_not_seen_by_the_next(
    user_project: pytest.Pytester,
) -> None:
    user_project.makeini(INI)
    result = _run(user_project)
    result.assert_outcomes(passed=3)
    assert _schemas(user_project) == ["None"]  # SQLite: a file in the test's tmp_path


def test_without_the_plugin_a_shared_database_leaks_into_the_next_test(
    user_project: pytest.Pytester,
) -> None:
    user_project.makeini(INI)
    user_project.makeconftest(SHARED_DATABASE)
    result = _run(user_project)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_the_next_test_starts_with_an_empty_outbox*"])


@pytest.mark.postgres
def test_on_postgres_each_test_gets_a_schema_that_is_dropped_after_it(
    user_project: pytest.Pytester,
) -> None:
    user_project.makeini(f"{INI}dockyard_database_url = {POSTGRES_URL}\n")
    result = _run(user_project)
    result.assert_outcomes(passed=3)
    (schema,) = _schemas(user_project)
    assert schema.startswith("dockyard_test_")
    assert asyncio.run(_existing([schema])) == []


@pytest.mark.postgres
def test_the_environment_variable_overrides_the_ini_option(
    user_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_project.makeini(INI)
    monkeypatch.setenv("DOCKYARD_TEST_DATABASE_URL", POSTGRES_URL)
    result = _run(user_project)
    result.assert_outcomes(passed=3)
    assert _schemas(user_project)[0].startswith("dockyard_test_")


def test_a_url_that_is_not_postgresql_is_refused(user_project: pytest.Pytester) -> None:
    user_project.makeini(f"{INI}dockyard_database_url = sqlite+aiosqlite:///shared.db\n")
    result = _run(user_project)
    result.assert_outcomes(errors=3)
    result.stdout.fnmatch_lines(["*must be a PostgreSQL one*"])
