"""``--env-file``: the app's factory sees the file's variables; the environment wins; a bad
line is one error naming the file and line, exit 2. The real command, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dockyard.cli._env import EnvFileError, apply_env_file, read_env_file

SETTINGS_APP = """
import asyncio
import os
from pathlib import Path

from dockyard.app import App
from dockyard.modules import ProvidesBackgroundServices, module


class Report:
    name = "report"

    async def run(self, stop: asyncio.Event) -> None:
        names = ("DATABASE_URL", "GREETING", "MODE")
        Path("seen.txt").write_text(" | ".join(os.environ.get(n, "-") for n in names))


class Services(ProvidesBackgroundServices):
    def background_services(self, app):
        return [Report()]


def make_app() -> App:
    # A factory reads its settings when called: after --env-file was applied.
    assert os.environ["DATABASE_URL"], "no DATABASE_URL"

    @module(extensions=[Services()])
    class Root: ...

    return App.build(Root)
"""

ENV = """
# settings for the worker
DATABASE_URL=sqlite:///shop.db
export GREETING="hello\\nworld"   # escapes in double quotes
MODE='as # written'
"""


def _dockyard(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "settings_app.py").write_text(textwrap.dedent(SETTINGS_APP))
    script = Path(sys.executable).with_name("dockyard")
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "GREETING", "MODE"}}
    return subprocess.run(
        [str(script), *args],
        cwd=tmp_path,
        env={**base, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("where", ["worker", "root"])
def test_the_factory_sees_the_env_files_variables(tmp_path: Path, where: str) -> None:
    (tmp_path / "prod.env").write_text(ENV)
    args = (
        ["worker", "settings_app:make_app", "--env-file", "prod.env"]
        if where == "worker"
        else ["--env-file", "prod.env", "worker", "settings_app:make_app"]
    )
    result = _dockyard(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "seen.txt").read_text() == "sqlite:///shop.db | hello\nworld | as # written"


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "prod.env").write_text(ENV)
    result = _dockyard(
        tmp_path,
        "worker",
        "settings_app:make_app",
        "--env-file",
        "prod.env",
        env={"MODE": "from the environment"},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "seen.txt").read_text().endswith("| from the environment")


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (
            "DATABASE_URL=x\nnot a setting\n",
            "error: bad.env:2: expected `KEY=VALUE`, got `not a setting`",
        ),
        ('GREETING="open\n', 'error: bad.env:1: the value "open has no closing "'),
        (None, "error: env file `bad.env` does not exist"),
    ],
)
def test_a_bad_env_file_is_one_line_and_exit_2(
    tmp_path: Path, content: str | None, error: str
) -> None:
    if content is not None:
        (tmp_path / "bad.env").write_text(content)
    result = _dockyard(tmp_path, "worker", "settings_app:make_app", "--env-file", "bad.env")
    assert result.returncode == 2
    assert result.stderr.strip() == error
    assert not (tmp_path / "seen.txt").exists()


def test_reading_and_applying(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text('A=1\nB = two words  # note\nC=\'\'\nexport D="q\\"uote"\n')
    assert read_env_file(path) == {"A": "1", "B": "two words", "C": "", "D": 'q"uote'}
    environ = {"A": "already"}
    assert apply_env_file(path, environ) == {"B": "two words", "C": "", "D": 'q"uote'}
    assert environ["A"] == "already"
    path.write_text("1A=x\n")
    with pytest.raises(EnvFileError, match=r"\.env:1: expected `KEY=VALUE`, got `1A=x`"):
        read_env_file(path)
