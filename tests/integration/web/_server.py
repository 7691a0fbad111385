"""Real HTTP servers for web integration tests: uvicorn on a free port.

``serving`` runs an ASGI app in the test's own event loop (the test can look inside the app);
``server_process`` runs ``uvicorn --factory`` as a process of its own, as ``make serve`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import uvicorn

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 60.0  # generous: the machine may be busy; nothing waits this long when all is well


@asynccontextmanager
async def serving(asgi_app: Any) -> AsyncIterator[str]:
    """Serve ``asgi_app`` with uvicorn (lifespan on) on 127.0.0.1; yield its base URL."""
    config = uvicorn.Config(asgi_app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(30):
            await task


class ServerProcess:
    """A uvicorn process; what it printed (its log and the app's prints) is in ``log``."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, url: str) -> None:
        self.process = process
        self.log = log
        self.url = url

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def server_process(factory: str, log: Path) -> Iterator[ServerProcess]:
    """Run ``uvicorn --factory <factory>`` on a free port of 127.0.0.1 until the block ends.

    Stopped with SIGINT, as Ctrl+C stops ``make serve``: the block's end raises if the
    server does not stop cleanly (exit status 0) in time.
    """
    command = [sys.executable, "-m", "uvicorn", factory, "--factory"]
    command += ["--host", "127.0.0.1", "--port", "0", "--log-level", "info"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=sink)
    try:
        url = _started(process, log)
        yield ServerProcess(process, log, url)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            status = process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            message = f"uvicorn did not stop in {TIMEOUT:.0f} s:\n{_tail(log)}"
            raise AssertionError(message) from None
    if status != 0:
        raise AssertionError(f"uvicorn exited with {status}:\n{_tail(log)}")


_RUNNING = re.compile(r"Uvicorn running on (http://[\d.]+:\d+)")


def _started(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        found = _RUNNING.search(log.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise AssertionError(f"uvicorn stopped at start-up:\n{_tail(log)}")
        time.sleep(0.05)
    raise AssertionError(f"uvicorn did not start in {TIMEOUT:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
