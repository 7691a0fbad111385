"""Web, counted: instructions the uvicorn server runs per request, endpoint by endpoint.

``bench.web`` times requests on a machine that other clients share; its ratios move with their
load (1.01–1.24× for the same code on one day). This scenario gives the same comparison in a
figure that load does not move: the server process of ``bench.web`` (uvicorn, httptools,
uvloop, the framework, dockyard) runs under ``valgrind --tool=cachegrind``, and the
instructions it executes are counted. For each framework and app, one server run serves only
its warm-up (every endpoint answers once, as ``bench.web`` waits for) and stops; then, for each
row, one run serves the same warm-up and ``REQUESTS`` more requests to that row's endpoint, one
after another on one keep-alive connection. A row's instructions per request are its run's
total minus the warm-up run's, over ``REQUESTS``; ``PYTHONHASHSEED=0`` in every run, so two
runs of the same code differ by a few hundred instructions per request at most.

What it does not see: time spent waiting (there is no I/O in these endpoints beyond the
socket), cache misses and the scheduler. It is the work each variant adds, which is what the
issue's ratio is about; ``bench.web`` stays the timed figure.

Issue #15's target, applied to the count: ``FromDockyard[ISender]`` under ``@inject`` (and
the dependency path, printed for scale) ≤ 1.10× the bare ``app.send`` endpoint.

Run: ``python -m bench web_instructions`` (``make bench ARGS=web_instructions``); needs
``valgrind`` on ``PATH`` (Debian: ``apt-get install valgrind``). A run takes about a minute of
one core per row. Settings: ``DOCKYARD_BENCH_WEB`` (which servers, as for ``bench.web``;
default ``fastapi:minimal,litestar:minimal``), ``DOCKYARD_BENCH_WEB_REQUESTS`` (default 2000).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.web import _REQUEST, BASELINE, ENDPOINTS, Server, wait_ready

REQUESTS = int(os.environ.get("DOCKYARD_BENCH_WEB_REQUESTS", "2000"))
SERVERS = os.environ.get("DOCKYARD_BENCH_WEB", "fastapi:minimal,litestar:minimal")
ROWS = ("/bare", "/by-hand", "/integrated", "/routed")
TARGET = 1.10


async def _send(port: int, path: str, count: int) -> None:
    """``count`` requests to ``path``, one after another on one keep-alive connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _REQUEST % path.encode()
    try:
        for _ in range(count):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            if not head.startswith(b"HTTP/1.1 2"):
                raise RuntimeError(f"{path} answered {head.splitlines()[0]!r}")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


ROOT = Path(__file__).resolve().parent.parent


def _start(valgrind: str, framework: str, shape: str, folder: str) -> subprocess.Popen[bytes]:
    """``bench.web``'s server under cachegrind, writing its counts into ``folder``."""
    return subprocess.Popen(
        [
            valgrind,
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--cachegrind-out-file={folder}/cachegrind.out",
            sys.executable,
            "-m",
            "bench.web",
            "serve",
            framework,
            shape,
            folder,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def _total(folder: str) -> int:
    """The instructions cachegrind counted, from its output file's ``summary`` line."""
    summary = re.search(
        r"^summary:\s+(\d+)", Path(folder, "cachegrind.out").read_text(), re.MULTILINE
    )
    if summary is None:
        raise RuntimeError(f"no cachegrind summary in {folder}")
    return int(summary.group(1))


async def count(valgrind: str, framework: str, shape: str, path: str | None) -> int:
    """Instructions of one server run: the warm-up, then ``REQUESTS`` to ``path`` (if any)."""
    with tempfile.TemporaryDirectory() as folder:
        process = _start(valgrind, framework, shape, folder)
        try:
            assert process.stdout is not None
            line = await asyncio.to_thread(process.stdout.readline)
            if not line.startswith(b"port "):
                raise RuntimeError(f"the {framework} server did not start: {line!r}")
            srv = Server(framework, shape, int(line.split()[1]), process)
            await wait_ready(srv)
            if path is not None:
                await _send(srv.port, path, REQUESTS)
        finally:
            process.terminate()
            await asyncio.to_thread(process.wait, 300)
        return await asyncio.to_thread(_total, folder)


async def main() -> None:
    valgrind = shutil.which("valgrind")
    print("\n## web, counted: instructions per request in the uvicorn server (cachegrind)")
    if valgrind is None:
        print("skipped: valgrind is not on PATH (Debian: apt-get install valgrind)")
        return
    names = dict(ENDPOINTS)
    for server in SERVERS.split(","):
        framework, shape = server.split(":")
        warm_up = await count(valgrind, framework, shape, None)
        per_request = {
            path: (await count(valgrind, framework, shape, path) - warm_up) / REQUESTS
            for path in ROWS
        }
        base = per_request[BASELINE]
        print(f"\n{framework}, {shape} app; {REQUESTS} requests a row; × {names[BASELINE]}")
        print(f"| endpoint | instructions per request | × bare | ≤ {TARGET:.2f}× |")
        print("| --- | ---: | ---: | --- |")
        for path, instructions in per_request.items():
            ratio = instructions / base
            judged = "" if path == BASELINE else ("met" if ratio <= TARGET else "not met")
            print(f"| {names[path]} | {instructions:,.0f} | {ratio:.3f} | {judged} |")
