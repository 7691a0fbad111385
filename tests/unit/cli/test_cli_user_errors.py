"""User errors reach the `dockyard worker` user as one readable line and an exit code, not a
traceback (`--debug` shows it): the real command, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BROKEN_BUILD = """
from dockyard import App, module


class Missing: ...


class NeedsMissing:
    def __init__(self, missing: Missing) -> None: ...


from dockyard import scoped


@module(providers=[scoped(NeedsMissing)])
class Root: ...


app = App.build(Root)
"""

UNREACHABLE_DATABASE = """
from dockyard import App, module
from dockyard.sql import SqlModule


@module(imports=[SqlModule.register("postgresql://nobody@127.0.0.1:1/none", create_tables=True)])
class Root: ...


app = App.build(Root)
"""

RAISES_AT_IMPORT = """
settings = {}
port = settings["port"]
"""


def _worker(tmp_path: Path, source: str, *flags: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "user_app.py").write_text(textwrap.dedent(source))
    script = Path(sys.executable).with_name("dockyard")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [str(script), "worker", "user_app:app", *flags],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("source", "code", "says"),
    [
        (
            BROKEN_BUILD,
            2,
            "Module `Root` needs `Missing` (for `NeedsMissing`), but no module provides it.",
        ),
        (RAISES_AT_IMPORT, 2, "importing `user_app` failed: KeyError: 'port'"),
        (UNREACHABLE_DATABASE, 1, "error: The database did not answer while trying to create"),
    ],
    ids=["app-does-not-build", "module-raises", "database-unreachable"],
)
def test_a_user_error_is_one_readable_message_and_an_exit_code(
    tmp_path: Path, source: str, code: int, says: str
) -> None:
    result = _worker(tmp_path, source)
    assert result.returncode == code, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert "(run with --debug for the traceback)" in result.stderr
    assert len(result.stderr.splitlines()) <= 12, result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = _worker(tmp_path, RAISES_AT_IMPORT, "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "KeyError: 'port'" in result.stderr
