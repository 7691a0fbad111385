"""A real ``dockyard worker`` process for tests: its log lines, its health, its exit code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from integration._apps.services import PYTHON, ROOT, python_env

COMMAND = "import sys; from dockyard.cli import main; main(sys.argv[1:])"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def wait_until(
    check: Callable[[], Awaitable[bool] | bool], what: str, within: float = 60.0
) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after a generous ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.05)


class WorkerProcess:
    """``dockyard worker APP --health-port N`` in a subprocess, its stderr kept line by line."""

    def __init__(self, app: str, env: dict[str, str], *args: str) -> None:
        self.health_port = free_port()
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [PYTHON, "-c", COMMAND, "worker", app, "--health-port", str(self.health_port), *args],
            cwd=ROOT,
            env={**python_env(), **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self, pattern: str, logger: str = "dockyard") -> list[str]:
        """The log lines of ``logger`` (and its children) that match ``pattern``."""
        found = re.compile(pattern)
        prefix = re.compile(rf" (DEBUG|INFO|WARNING|ERROR|CRITICAL) {re.escape(logger)}[.:]")
        return [line for line in list(self.lines) if prefix.search(line) and found.search(line)]

    def output(self) -> str:
        return "\n".join(self.lines[-80:])

    async def probe(self, path: str) -> tuple[int, dict[str, Any]]:
        """``GET path`` on the health port: the status code and the JSON body."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.health_port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: worker\r\n\r\n".encode())
            await writer.drain()
            response = await reader.read()
        finally:
            writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    async def states(self) -> dict[str, str]:
        """Each service's state, from ``/readyz`` (empty while the port is not open yet)."""
        try:
            _, body = await self.probe("/readyz")
        except OSError:
            return {}
        return {name: s["state"] for name, s in body["services"].items()}

    async def wait_states(self, want: Callable[[dict[str, str]], bool], what: str) -> None:
        async def check() -> bool:
            assert self.alive, f"the worker exited ({self.process.poll()}):\n{self.output()}"
            states = await self.states()
            return bool(states) and want(states)

        await wait_until(check, what)

    async def ready(self) -> None:
        await self.wait_states(lambda s: set(s.values()) == {"running"}, "every service running")

    def signal(self, signum: signal.Signals = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    async def exit_code(self, within: float = 60.0) -> int:
        try:
            await wait_until(lambda: not self.alive, "the worker to exit", within)
        except AssertionError as error:  # say what it was doing
            raise AssertionError(f"{error}; its output so far:\n{self.output()}") from None
        self._reader.join(timeout=10)
        code = self.process.returncode
        assert code is not None
        return code

    def kill(self) -> None:
        """End the process if it still runs; close its pipe (call it in ``finally``)."""
        if self.alive:
            self.process.kill()
        self.process.wait()
        self._reader.join(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()


def worker_env(**values: str) -> dict[str, str]:
    """``DOCKYARD_OUTAGE_*`` variables for ``integration._apps.outage_worker``."""
    return {f"DOCKYARD_OUTAGE_{key.upper()}": value for key, value in values.items()} | {
        "PYTHONPATH": python_env()["PYTHONPATH"] + os.pathsep + str(ROOT / "src")
    }
