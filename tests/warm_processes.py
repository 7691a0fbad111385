"""New processes for ``dockyard`` commands, forked from an interpreter that imported dockyard.

A test of the CLI runs the command as a user does: a process of its own, with its own
environment, working directory, standard streams and exit code. Started from nothing, each
such process spends 0.4–0.7 s importing Dishka, SQLAlchemy, Typer and dockyard (2–4 s on a
machine whose cores are busy): the CLI's tests were 43 % of a ``make test-stress`` run
(docs/design/testing.md). A *warm* process does the imports once; for each command it forks a
child, which sets the command's environment, directory and streams, imports the app and runs
``dockyard.cli.main`` (or a module, as ``python -m`` would) and exits with its code. The child
is a new process with the same state as a fresh one at that point, except for what the imports
did, which read no environment (dockyard reads its variables when an app is built).

What differs from the console script: the script file itself is not run (``tests/unit/cli``
keeps tests that run it), and an environment whose ``PYTHONPATH`` is not the warm process's is
run as a real subprocess instead, as is everything on a platform without ``fork``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

# Runs in the warm process: read a command (one JSON line), fork, report the child's pid, then
# its exit status (as subprocess gives it: negative for a signal).
_SERVER = r"""
import json, os, sys
import dockyard.cli._commands, dockyard.sql, sqlalchemy.dialects.postgresql.asyncpg  # noqa
import aiosqlite, asyncpg  # noqa


def child(command):
    import importlib, logging, runpy, traceback

    os.chdir(command["cwd"])
    importlib.invalidate_caches()  # files written since the warm process listed their folder
    os.environ.clear()
    os.environ.update(command["env"])
    streams = [("stdin", os.O_RDONLY), ("stdout", os.O_WRONLY), ("stderr", os.O_WRONLY)]
    for fd, (name, flags) in enumerate(streams):
        os.dup2(os.open(command[name], flags), fd)
    # the streams a new process would have on those descriptors (the warm process's own
    # stdin is the pipe its commands come on, with read-ahead of its own)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    sys.argv = list(command["argv"])
    code = 0
    try:
        if command["module"] is None:
            from dockyard.cli import main

            main(sys.argv[1:])
        else:
            runpy.run_module(command["module"], run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


for line in sys.stdin:
    command = json.loads(line)
    pid = os.fork()
    if pid == 0:
        child(command)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({"code": code}), flush=True)
"""


class WarmProcesses:
    """One warm interpreter; ``run`` is ``subprocess.run`` for a ``dockyard`` command or a
    ``python -m`` module, one command at a time (a lock serialises threads)."""

    def __init__(self, pythonpath: str) -> None:
        self.pythonpath = pythonpath
        self._lock = threading.Lock()
        self._server: subprocess.Popen[str] | None = None

    def _started(self) -> subprocess.Popen[str]:
        if self._server is None or self._server.poll() is not None:
            self._server = subprocess.Popen(
                [sys.executable, "-c", _SERVER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": self.pythonpath},
                text=True,
            )
        return self._server

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        stdin: str | None = None,
        timeout: float = 120,
        module: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` (``["dockyard", ...]``, or ``[module, ...]`` with ``module``) as a new
        process: its exit code, stdout and stderr, as ``subprocess.run(..., text=True)``."""
        if env.get("PYTHONPATH") != self.pythonpath or not hasattr(os, "fork"):
            return _cold(argv, env=env, cwd=cwd, stdin=stdin, timeout=timeout, module=module)
        with self._lock, tempfile.TemporaryDirectory() as folder:
            paths = {name: Path(folder, name) for name in ("stdin", "stdout", "stderr")}
            paths["stdin"].write_text(stdin or "")
            paths["stdout"].touch()
            paths["stderr"].touch()
            command: dict[str, Any] = {
                "argv": argv,
                "env": env,
                "cwd": str(cwd),
                "module": module,
                **{name: str(path) for name, path in paths.items()},
            }
            code = self._exchange(command, timeout)
            return subprocess.CompletedProcess(
                argv, code, paths["stdout"].read_text(), paths["stderr"].read_text()
            )

    def _exchange(self, command: dict[str, Any], timeout: float) -> int:
        server = self._started()
        assert server.stdin is not None
        assert server.stdout is not None
        server.stdin.write(json.dumps(command) + "\n")
        server.stdin.flush()
        pid = json.loads(server.stdout.readline())["pid"]
        expired = threading.Event()
        timer = threading.Timer(timeout, _kill, (pid, expired))
        timer.start()
        try:
            answer = server.stdout.readline()
        finally:
            timer.cancel()
        if not answer:
            raise RuntimeError("the warm process for CLI commands exited")
        if expired.is_set():
            raise subprocess.TimeoutExpired(command["argv"], timeout)
        code: int = json.loads(answer)["code"]
        return code

    def close(self) -> None:
        if self._server is not None:
            if self._server.stdin is not None:
                self._server.stdin.close()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            if self._server.stdout is not None:
                self._server.stdout.close()
            self._server = None


def _kill(pid: int, expired: threading.Event) -> None:
    expired.set()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _cold(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    stdin: str | None,
    timeout: float,
    module: str | None,
) -> subprocess.CompletedProcess[str]:
    """The same command started from nothing."""
    if module is None:
        command = [str(Path(sys.executable).with_name(argv[0])), *argv[1:]]
    else:
        command = [sys.executable, "-m", module, *argv[1:]]
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


_WARM: dict[str, WarmProcesses] = {}


@atexit.register
def _close_all() -> None:
    for warm in _WARM.values():
        warm.close()


def warm_processes(pythonpath: str) -> WarmProcesses:
    """The warm process of this test run for ``pythonpath`` (one per distinct value)."""
    found = _WARM.get(pythonpath)
    if found is None:
        found = _WARM[pythonpath] = WarmProcesses(pythonpath)
    return found


_SHELL = re.compile(r"[|&;<>$`\\]")
_SCRIPTS = {"dockyard": None, "alembic": "alembic"}  # console script -> its module (None: CLI)


def plain(command: str) -> tuple[list[str], str | None] | None:
    """``(argv, module)`` for ``run`` when the shell ``command`` is a plain ``dockyard ...``,
    ``alembic ...`` or ``python -m module ...`` (no pipe, redirection, variable or assignment);
    else ``None``: run it with the shell."""
    if _SHELL.search(command):
        return None
    words = shlex.split(command)
    if words[0] in _SCRIPTS:
        return words, _SCRIPTS[words[0]]
    if words[:2] == ["python", "-m"] and len(words) > 2:
        return words[2:], words[2]
    return None


def run_shell(
    command: str, *, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The shell ``command`` as ``bash -c`` runs it: forked from the warm interpreter of the
    environment's ``PYTHONPATH`` when it is :func:`plain`, else by ``bash``."""
    forked = plain(command)
    if forked is not None:
        argv, module = forked
        warm = warm_processes(env.get("PYTHONPATH", ""))
        return warm.run(argv, env=env, cwd=cwd, timeout=timeout, module=module)
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
