"""``docs/cli-operations.md`` shows what the operating commands print, now.

Each ``console`` block is a session; the page's sessions run in page order, in bash, in one
empty folder (the app's SQLite file is made there by the first session's ``seed``), and the
lines after each ``$ command`` up to the next must be exactly what it printed on stdout, except
that times (``2026-12-03 02:49:21Z``) may differ where the state holds the current time.

``DOCKYARD_UPDATE_GOLDEN=1`` writes what the commands print into the page instead (review the
diff).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from warm_processes import run_shell

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cli-operations.md"
UPDATE = os.environ.get("DOCKYARD_UPDATE_GOLDEN") == "1"
BLOCK = re.compile(r"^```console\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")
SEEDED_TIMES = frozenset(f"2026-11-30 00:5{n}:20Z" for n in range(4, 7))
"""The dead letters' fixed times, which must match exactly."""


def sessions(text: str) -> list[tuple[str, str, int]]:
    """``(command, output, line)`` of every session of the page, in page order."""
    found = []
    for block in BLOCK.finditer(text):
        line = text.count("\n", 0, block.start()) + 1
        body = block["body"]
        assert body.startswith("$ "), f"cli-operations.md:{line}: a session starts with `$ `"
        for session in re.split(r"^(?=\$ )", body, flags=re.MULTILINE):
            if session:
                command, _, output = session[2:].partition("\n")
                found.append((command, output, line))
    return found


_PYTHONPATH = os.pathsep.join([str(ROOT), *sys.path])


def run(command: str, folder: Path) -> str:
    allowed = ("dockyard ", "python -m docs.examples.", "DOCKYARD_DATABASE_URL=")
    assert command.startswith(allowed), command
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DOCKYARD_DATABASE_URL", "DOCKYARD_DATABASE_SCHEMA"}
    }
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": _PYTHONPATH,
        "COLUMNS": "100",
    }
    result = run_shell(command, env=env, cwd=folder)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def _times_masked(text: str) -> str:
    return TIME.sub(lambda m: m[0] if m[0] in SEEDED_TIMES else "<time>", text)


def test_the_page_shows_every_group() -> None:
    commands = [command for command, _, _ in sessions(PAGE.read_text(encoding="utf-8"))]
    groups = ("outbox status", "dead-letters", "projections rebuild", "sagas retry")
    for group in (*groups, "processes cancel"):
        assert any(group in command for command in commands), group


def test_the_commands_print_what_the_page_shows(tmp_path: Path) -> None:
    text = PAGE.read_text(encoding="utf-8")
    if UPDATE:
        new_text, offset = text, 0  # in page order: the state carries over
        for block in BLOCK.finditer(text):
            body = block["body"]
            parts = [s for s in re.split(r"^(?=\$ )", body, flags=re.MULTILINE) if s]
            commands = [p[2:].partition("\n")[0] for p in parts]
            new = "".join(f"$ {c}\n{run(c, tmp_path)}" for c in commands)
            start, end = block.start("body") + offset, block.end("body") + offset
            new_text = new_text[:start] + new + new_text[end:]
            offset += len(new) - len(body)
        PAGE.write_text(new_text, encoding="utf-8")
        return
    for command, output, line in sessions(text):
        printed = run(command, tmp_path)
        assert _times_masked(printed) == _times_masked(output), (
            f"docs/cli-operations.md:{line}: `{command}`"
        )
