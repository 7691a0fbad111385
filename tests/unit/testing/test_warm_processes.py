"""``tests/warm_processes.py``: each command a new process with its own streams, environment,
directory and exit code, as ``subprocess.run`` would give; nothing of one left for the next."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from warm_processes import plain, warm_processes

WARM = warm_processes(os.pathsep.join(sys.path))
ENV = {**os.environ, "PYTHONPATH": WARM.pythonpath}

PROBE = """
import os, sys
import dockyard

print("out", os.environ.get("PROBE"), os.getcwd() == sys.argv[1], sys.stdin.read().strip())
print("err", file=sys.stderr)
print("left over", getattr(dockyard, "left_over", None))
dockyard.left_over = "yes"  # in this process only
action = sys.argv[2]
if action == "raise":
    raise ValueError("boom")
if action == "sleep":
    import time
    time.sleep(60)
raise SystemExit(int(action) if action.isdigit() else action)
"""


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    (tmp_path / "probe.py").write_text(textwrap.dedent(PROBE))
    return tmp_path


def run(
    folder: Path,
    action: str,
    *,
    env: dict[str, str] = ENV,
    stdin: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    argv = ["probe", str(folder), action]
    return WARM.run(argv, env=env, cwd=folder, module="probe", stdin=stdin, timeout=timeout)


def test_streams_environment_directory_and_exit_codes(probe: Path) -> None:
    first = run(probe, "3", env={**ENV, "PROBE": "a"}, stdin="typed")
    assert first.returncode == 3
    assert first.stdout == "out a True typed\nleft over None\n"
    assert first.stderr == "err\n"
    second = run(probe, "0")  # no PROBE now, nothing on stdin, nothing left by the first
    assert (second.returncode, second.stdout) == (0, "out None True \nleft over None\n")


def test_a_message_or_an_exception_exits_1_as_python_does(probe: Path) -> None:
    said = run(probe, "nope")
    assert (said.returncode, said.stderr) == (1, "err\nnope\n")
    raised = run(probe, "raise")
    assert raised.returncode == 1
    assert "Traceback (most recent call last)" in raised.stderr
    assert raised.stderr.endswith("ValueError: boom\n")


def test_a_command_over_its_timeout_is_killed_and_the_next_runs(probe: Path) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        run(probe, "sleep", timeout=0.5)
    assert run(probe, "0").returncode == 0


def test_another_pythonpath_runs_from_nothing(probe: Path) -> None:
    cold = run(probe, "4", env={**ENV, "PYTHONPATH": f"{probe}{os.pathsep}{WARM.pythonpath}"})
    assert (cold.returncode, cold.stdout) == (4, "out None True \nleft over None\n")


@pytest.mark.parametrize(
    ("command", "forked"),
    [
        ("dockyard check app:app --json", (["dockyard", "check", "app:app", "--json"], None)),
        ('alembic revision -m "older"', (["alembic", "revision", "-m", "older"], "alembic")),
        ("python -m docs.examples.app seed", (["docs.examples.app", "seed"], "docs.examples.app")),
        ("dockyard check app:app 2>&1 || echo $?", None),
        ("dockyard db sql app:app | psql", None),
        ("DOCKYARD_DATABASE_URL=sqlite:///x.db dockyard check app:app", None),
        ("psql -X -f script.sql", None),
    ],
)
def test_plain_commands_are_forked_and_shell_ones_are_not(
    command: str, forked: tuple[list[str], str | None] | None
) -> None:
    assert plain(command) == forked
