"""An Alembic project as docs/migrations.md makes one, and the commands a reader runs in it.

``docs/migrations.md`` holds the ``env.py`` (a ``py`` block whose first line is
``# migrations/env.py``); ``tests/docs/test_migrations_page.py`` and
``tests/integration/sql/test_db_commands.py`` run it on SQLite and PostgreSQL, with
``alembic`` and ``dockyard`` as console scripts of this interpreter, each in a process of its
own (forked from a warm interpreter where the command is a plain one: ``run``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from warm_processes import run_shell

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "migrations.md"
BIN = Path(sys.executable).parent
APP = "docs.examples.migrations_app:app"
FILE_BLOCK = re.compile(r"^```py\n# (?P<path>\S+)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def page_file(path: str) -> str:
    """The content of the file the page shows as ``# path`` (the path line left out)."""
    text = PAGE.read_text(encoding="utf-8")
    for block in FILE_BLOCK.finditer(text):
        if block["path"] == path:
            return block["body"]
    raise AssertionError(f"docs/migrations.md shows no `# {path}`")


_PYTHONPATH = os.pathsep.join([str(ROOT), *sys.path])


def run(
    command: str, *, cwd: Path, url: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``command`` in bash, with this interpreter's scripts first on the PATH; a plain
    ``dockyard ...`` or ``alembic ...`` (no pipe, redirection or variable) as a new process
    forked from a warm one (``tests/warm_processes.py``)."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": _PYTHONPATH,
    }
    env.pop("DATABASE_URL", None)
    if url is not None:
        env["DATABASE_URL"] = url
    result = run_shell(command, env=env, cwd=cwd, timeout=180)
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, f"`{command}` exited {result.returncode}: {result.stderr}"
    return result


@dataclass(frozen=True, slots=True)
class Project:
    """``alembic init -t async migrations`` with the page's ``env.py``, in ``folder``."""

    folder: Path
    url: str

    @classmethod
    def make(cls, folder: Path, url: str, env_py: str | None = None) -> Project:
        run("alembic init -t async migrations", cwd=folder)
        (folder / "migrations" / "env.py").write_text(env_py or page_file("migrations/env.py"))
        return cls(folder, url)

    def run(self, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(command, cwd=self.folder, url=self.url, check=check)

    def revisions(self) -> list[Path]:
        return sorted((self.folder / "migrations" / "versions").glob("*.py"))


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A PostgreSQL database of a unique name (dropped after): its ``postgresql+asyncpg`` URL."""
    import asyncio

    url = make_url(server_url)
    name = f"dockyard_db_{uuid.uuid4().hex[:12]}"
    plain = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(plain)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
