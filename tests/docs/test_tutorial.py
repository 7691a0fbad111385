"""``docs/tutorial.md`` works as written, from an empty folder.

The page shows every file of the project in ``docs/tutorial/`` in full, in a ``py`` (or
``toml``) block whose first line is ``# <path>``; the first test checks that the blocks and the
files are the same, both ways. The second follows the page top to bottom against real
PostgreSQL and RabbitMQ, doing what a reader does:

* a file block is written into the project folder; ``mkdir``, ``cd`` and ``touch`` do what
  they say, in a temporary folder;
* ``createdb NAME`` creates a database of a unique name (dropped at the end), and every
  ``postgresql+asyncpg://postgres@localhost/NAME`` in a command, and the settings the
  services read from the environment, point there;
* ``python -m venv``, activating it, and ``pip install`` stand for the environment this test
  runs in: ``pip install`` checks that what it names (extras included) is installed;
* ``python -m …`` and ``pytest`` run to completion and must succeed; ``uvicorn`` (on a free
  port) and ``dockyard worker`` start in the background;
* ``curl`` runs, and its output must be the JSON of the ``json`` block that follows (a GET is
  repeated until it is: the read model lags the events a little);
* each line of a ``text`` block must show up in what the commands printed (timestamps and
  durations aside).

The services get a RabbitMQ destination of their own. At the end every process is stopped
with SIGTERM and must exit with 0 and no traceback; the databases and the RabbitMQ exchange
and queue are deleted.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from packaging.requirements import Requirement
from sqlalchemy.engine import make_url

from integration._apps.services import RABBIT_URL, delete_rabbit_destinations
from services import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "tutorial.md"
PROJECT = ROOT / "docs" / "tutorial"
NOT_SHOWN = {"ruff.toml"}  # the repository's lint settings for the folder, not the tutorial's
BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
LOCAL_URL = re.compile(r"postgresql\+asyncpg://postgres@localhost/(\w+)")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
DURATION = re.compile(r" in \d+(\.\d+)?s\b")
BIN = Path(sys.executable).parent
WITHIN = 60.0  # seconds for a process to start, a message to arrive, a read model to catch up


@dataclass(frozen=True, slots=True)
class Block:
    language: str
    text: str
    line: int

    @property
    def shown_file(self) -> str | None:
        """The path a file block names on its first line (``# bank/app.py``), else ``None``."""
        first, _, _ = self.text.partition("\n")
        if self.language in {"py", "toml"} and first.startswith("# "):
            return first[2:].strip()
        return None

    @property
    def content(self) -> str:
        return self.text.partition("\n")[2]


def blocks() -> list[Block]:
    text = PAGE.read_text(encoding="utf-8")
    return [
        Block(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in BLOCK.finditer(text)
    ]


def commands(block: Block) -> Iterator[str]:
    for line in block.text.splitlines():
        yield from (part.strip() for part in line.split(" && ") if part.strip())


def test_the_page_shows_every_file_of_the_project_as_it_is() -> None:
    shown: dict[str, str] = {}
    for block in blocks():
        path = block.shown_file
        if path is not None:
            assert path not in shown, f"tutorial.md:{block.line}: {path} is shown twice"
            shown[path] = block.content
    touched = {
        argument
        for block in blocks()
        if block.language == "sh"
        for command in commands(block)
        if command.startswith("touch ")
        for argument in shlex.split(command)[1:]
    }
    files = {
        str(path.relative_to(PROJECT))
        for path in PROJECT.rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".toml"}
        and "__pycache__" not in path.parts
        and path.name not in NOT_SHOWN
    }
    empty = {f for f in files if not (PROJECT / f).read_text(encoding="utf-8")}
    assert set(shown) == files - empty, "every non-empty file, and only those, is shown"
    assert touched == empty, "the empty files are the ones the page creates with `touch`"
    for path, content in shown.items():
        assert content == (PROJECT / path).read_text(encoding="utf-8"), f"{path} differs"


@dataclass(frozen=True, slots=True)
class Process:
    argv: list[str]
    process: subprocess.Popen[bytes]
    log: Path

    def printed(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@dataclass
class Reader:
    """The reader's shell: where they are, what they started, what was printed."""

    folder: Path
    suffix: str
    env: dict[str, str]
    databases: dict[str, str] = field(default_factory=dict)
    printed: list[str] = field(default_factory=list)
    background: list[Process] = field(default_factory=list)
    port: int | None = None
    last_curl: list[str] | None = None

    def output(self) -> str:
        return "\n".join([*self.printed, *(process.printed() for process in self.background)])

    def substitute(self, command: str) -> str:
        def local(match: re.Match[str]) -> str:
            return self.database_url(match.group(1))

        command = LOCAL_URL.sub(local, command).replace("--port 8000", "--port 0")
        if self.port is not None:
            command = command.replace("localhost:8000", f"127.0.0.1:{self.port}")
        return command

    def database_url(self, name: str) -> str:
        assert name in self.databases, f"the page uses database {name!r} before creating it"
        url = make_url(POSTGRES_URL).set(database=self.databases[name])
        return url.render_as_string(hide_password=False)

    def program(self, name: str) -> str:
        if name == "python":
            return sys.executable
        found = BIN / name
        if found.exists():
            return str(found)
        on_path = shutil.which(name)
        if on_path is None:
            message = f"`{name}` is not installed, and the tutorial runs it"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        return on_path


async def run_command(reader: Reader, command: str) -> None:  # noqa: PLR0912 - one case per command
    words = shlex.split(reader.substitute(command))
    env = dict(reader.env)
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    program, arguments = words[0], words[1:]
    if program == "mkdir":
        for argument in (a for a in arguments if not a.startswith("-")):
            (reader.folder / argument).mkdir(parents=True, exist_ok=True)
    elif program == "cd":
        reader.folder = reader.folder / arguments[0]
    elif program == "touch":
        for argument in arguments:
            (reader.folder / argument).touch()
    elif program == "." or arguments[:2] == ["-m", "venv"]:
        pass  # this test runs in its own environment
    elif program == "pip":
        assert arguments[0] == "install", command
        for requirement in (a for a in arguments[1:] if not a.startswith("-")):
            check_installed(Requirement(requirement))
    elif program == "createdb":
        name = arguments[-1]
        reader.databases[name] = f"tutorial_{name}_{reader.suffix}"
        await admin(f'CREATE DATABASE "{reader.databases[name]}"')
        reader.env[f"{name.upper()}_DATABASE_URL"] = reader.database_url(name)
    elif program in {"uvicorn", "dockyard"}:
        start(reader, [reader.program(program), *arguments], env)
        if program == "uvicorn":
            reader.port = await uvicorn_port(reader)
    elif program == "curl":
        reader.last_curl = [reader.program(program), *arguments]
    elif program in {"python", "pytest"}:
        done = await asyncio.to_thread(
            subprocess.run,
            [reader.program(program), *arguments],
            cwd=reader.folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        printed = done.stdout + done.stderr
        assert done.returncode == 0, f"`{command}` failed:\n{printed}"
        assert "warnings summary" not in printed, f"`{command}` warned:\n{printed}"
        reader.printed.append(printed)
    else:
        pytest.fail(f"the test does not know how to run `{command}` from tutorial.md")
    if program != "curl":
        reader.last_curl = None


def check_installed(requirement: Requirement) -> None:
    version = importlib.metadata.version(requirement.name)  # raises if it is not installed
    assert requirement.specifier.contains(version, prereleases=True), requirement
    needed = map(Requirement, importlib.metadata.requires(requirement.name) or [])
    for dependency in needed:
        marker = dependency.marker
        in_extras = marker is not None and any(
            marker.evaluate({"extra": extra}) for extra in requirement.extras
        )
        if in_extras and dependency.name != requirement.name:  # not an extra of extras
            importlib.metadata.version(dependency.name)  # raises if it is not installed


def start(reader: Reader, argv: list[str], env: dict[str, str]) -> None:
    log = reader.folder.parent / f"process-{len(reader.background)}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, cwd=reader.folder, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    reader.background.append(Process(argv, process, log))


async def uvicorn_port(reader: Reader) -> int:
    uvicorn = reader.background[-1]
    deadline = time.monotonic() + WITHIN
    while time.monotonic() < deadline:
        found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", uvicorn.printed())
        if found is not None:
            return int(found.group(1))
        assert uvicorn.process.poll() is None, f"uvicorn stopped:\n{uvicorn.printed()}"
        await asyncio.sleep(0.05)
    pytest.fail(f"uvicorn did not start within {WITHIN:.0f} s:\n{uvicorn.printed()}")


async def curl(reader: Reader, argv: list[str], expected: object) -> None:
    repeat = "-X" not in argv  # a GET reads the read model, which may lag: read again
    deadline = time.monotonic() + WITHIN
    while True:
        done = await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, f"curl failed: {done.stderr}"
        answer = json.loads(done.stdout)
        if answer == expected or not repeat or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert answer == expected, f"{shlex.join(argv)} answered {done.stdout}"


def normalized(line: str) -> str:
    return DURATION.sub(" in Ns", TIMESTAMP.sub("", line.strip()))


async def shows(reader: Reader, block: Block, destination: str) -> None:
    expected = [
        normalized(line).replace("consumer:bank.notifications:", f"consumer:{destination}:")
        for line in block.text.splitlines()
        if line.strip()
    ]
    deadline = time.monotonic() + WITHIN
    while True:
        printed = {normalized(line) for line in reader.output().splitlines()}
        missing = [line for line in expected if line not in printed]
        if not missing or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert not missing, f"tutorial.md:{block.line}: not printed: {missing}\n{reader.output()}"


async def admin(statement: str) -> None:
    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def stop(reader: Reader) -> list[str]:
    """SIGTERM every process the page started; what went wrong, if anything."""
    problems = []
    for started in reader.background:
        if started.process.poll() is None:
            started.process.send_signal(signal.SIGTERM)
    for started in reader.background:
        try:
            code = await asyncio.to_thread(started.process.wait, WITHIN)
        except subprocess.TimeoutExpired:
            started.process.kill()
            code = await asyncio.to_thread(started.process.wait)
        printed = started.printed()
        # uvicorn (0.29 and later) stops cleanly, then re-raises the signal it caught
        clean = {0, -signal.SIGTERM} if Path(started.argv[0]).name == "uvicorn" else {0}
        if code not in clean or "Traceback" in printed:
            problems.append(f"{shlex.join(started.argv)} exited with {code}:\n{printed}")
    return problems


async def sent_messages(reader: Reader) -> list[tuple[str, str]]:
    url = make_url(reader.database_url("notifications")).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        rows = await connection.fetch("SELECT account_id, text FROM sent_messages")
    finally:
        await connection.close()
    return [(row["account_id"], row["text"]) for row in rows]


@pytest.mark.postgres
@pytest.mark.rabbit
@pytest.mark.slow
async def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:10]
    destination = f"tutorial-{suffix}.notifications"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DOCKYARD_TEST_", "BANK_", "NOTIFICATIONS_", "RABBIT_"))
    }
    env |= {
        "PYTHONPATH": str(ROOT / "src"),  # this checkout's dockyard
        "PYTHONUNBUFFERED": "1",
        "RABBIT_URL": RABBIT_URL,
        "NOTIFICATIONS_DESTINATION": destination,
    }
    reader = Reader(tmp_path, suffix, env)
    problems: list[str] = []
    try:
        for block in blocks():
            path = block.shown_file
            if path is not None:
                (reader.folder / path).write_text(block.content, encoding="utf-8")
            elif block.language == "sh":
                for command in commands(block):
                    await run_command(reader, command)
            elif block.language == "json":
                assert reader.last_curl is not None, f"tutorial.md:{block.line}: after no curl"
                await curl(reader, reader.last_curl, json.loads(block.text))
                reader.last_curl = None
            elif block.language == "text":
                await shows(reader, block, destination)
        assert reader.last_curl is None, "a curl without the answer it should give"
        # The effect happened once, in the notifications database.
        assert await sent_messages(reader) == [("acc-1", "Welcome to the bank, Ada!")]
    finally:
        problems = await stop(reader)
        await asyncio.gather(  # each DROP DATABASE waits for a checkpoint: drop them at once
            *(
                admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                for database in reader.databases.values()
            ),
            delete_rabbit_destinations((destination, f"{destination}.notifications")),
        )
    assert not problems, "\n\n".join(problems)
