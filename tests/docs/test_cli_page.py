"""``docs/cli.md`` shows what the ``dockyard`` command prints, now.

* A ``console`` block is a session: each ``$ command`` runs in bash in the repository's root
  (``dockyard`` is the console script of this interpreter), and the lines up to the next ``$``
  must be exactly what it printed on stdout (a session that shows an error writes ``2>&1``).
* A ``mermaid`` block follows a ``<!-- $ command -->`` line and must be what the command prints.

``DOCKYARD_UPDATE_GOLDEN=1`` writes what the commands print into the page instead (review the
diff); the page's ``python`` block runs with the other snippets (``test_snippets.py``).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from diagram_syntax import check_mermaid
from warm_processes import run_shell

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cli.md"
UPDATE = os.environ.get("DOCKYARD_UPDATE_GOLDEN") == "1"
BLOCK = re.compile(
    r"^(?:<!-- \$ (?P<command>[^\n]+) -->\n)?```(?P<language>console|mermaid)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class Shown:
    command: str
    output: str
    line: int


def shown(text: str) -> list[Shown]:
    """Every command of the page with the output it shows, in page order."""
    found: list[Shown] = []
    for block in BLOCK.finditer(text):
        line = text.count("\n", 0, block.start()) + 1
        body = block["body"]
        if block["language"] == "mermaid":
            assert block["command"], f"cli.md:{line}: a mermaid block without its command"
            found.append(Shown(block["command"], body, line))
            continue
        assert body.startswith("$ "), f"cli.md:{line}: a session starts with a command"
        for session in re.split(r"^(?=\$ )", body, flags=re.MULTILINE):
            if session:
                command, _, output = session[2:].partition("\n")
                found.append(Shown(command, output, line))
    return found


_PYTHONPATH = os.pathsep.join(sys.path)


def run(command: str) -> str:
    assert command.startswith("dockyard "), command
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": _PYTHONPATH,
    }
    result = run_shell(command, env=env, cwd=ROOT)
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


TEXT = PAGE.read_text(encoding="utf-8")
SHOWN = shown(TEXT)


def test_the_page_shows_sessions_and_diagrams() -> None:
    commands = [s.command for s in SHOWN]
    assert "dockyard graph examples.shop.main:shop" in commands  # the modules diagram
    assert any(c.startswith("dockyard check") for c in commands)
    assert any(c.startswith("dockyard describe") for c in commands)


@pytest.mark.skipif(not UPDATE, reason="DOCKYARD_UPDATE_GOLDEN=1 writes the outputs")
def test_write_what_the_commands_print_into_the_page() -> None:
    text = TEXT
    for block in reversed(list(BLOCK.finditer(text))):
        body = block["body"]
        if block["language"] == "mermaid":
            new = run(block["command"])
        else:
            sessions = [s for s in re.split(r"^(?=\$ )", body, flags=re.MULTILINE) if s]
            new = "".join(
                f"$ {command}\n{run(command)}"
                for command in (s[2:].partition("\n")[0] for s in sessions)
            )
        text = text[: block.start("body")] + new + text[block.end("body") :]
    PAGE.write_text(text, encoding="utf-8")


@pytest.mark.skipif(UPDATE, reason="the page is being written")
@pytest.mark.parametrize("example", SHOWN, ids=[f"line {s.line}: {s.command}" for s in SHOWN])
def test_the_command_prints_what_the_page_shows(example: Shown) -> None:
    printed = run(example.command)
    assert printed == example.output, f"docs/cli.md:{example.line}: `{example.command}`"
    if "graph" in example.command and "2>&1" not in example.command:
        check_mermaid(printed.rstrip("\n"))
