"""``make test-stress``: the whole suite on a busy machine and a busy PostgreSQL server.

While pytest runs, this keeps every core busy with CPU burners and holds two writing
transactions open on the PostgreSQL server the tests use: one in another database, and one in
the tests' database that only writes a table of its own (a migration, a batch job, a
neighbouring app's idle session). The suite must pass anyway.

``python -m tests.stress [--runs N] [-- pytest args...]`` runs the suite N times (default 1),
stopping at the first failure; the exit code is pytest's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.synchronize import Event

URL = os.environ.get("DOCKYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

# Runs in its own process: two connections, each inside a transaction that has written,
# held open until this process is killed.
_HOLDER = """
import asyncio, sys
import asyncpg

async def main(url):
    elsewhere = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
    here = await asyncpg.connect(url)
    for connection in (elsewhere, here):
        await connection.execute("CREATE TEMP TABLE stress_rows (n int)")
        await connection.execute("BEGIN")
        await connection.execute("INSERT INTO stress_rows VALUES (1)")
    print("holding", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


def _burn(stop: Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(200_000):
            x ^= i * i


@contextmanager
def _busy_cores() -> Iterator[None]:
    stop = multiprocessing.Event()
    burners = [
        multiprocessing.Process(target=_burn, args=(stop,), daemon=True)
        for _ in range(os.cpu_count() or 2)
    ]
    for burner in burners:
        burner.start()
    try:
        yield
    finally:
        stop.set()
        for burner in burners:
            burner.join(timeout=5)
            if burner.is_alive():
                burner.kill()


@contextmanager
def _open_transactions() -> Iterator[None]:
    url = URL.replace("postgresql+asyncpg://", "postgresql://")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        if line.strip() != "holding":
            raise SystemExit(f"stress: could not open the transactions on {url}")
        yield
    finally:
        holder.kill()
        holder.wait()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stress")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM (a CI timeout, `kill`): unwind, so the run's pytest is killed and the
    # burners and the transaction holder stop with it instead of outliving this process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    code = 0
    for run in range(1, args.runs + 1):
        started = time.monotonic()
        with _open_transactions(), _busy_cores():
            code = subprocess.call([sys.executable, "-m", "pytest", *args.pytest_args])
        took = time.monotonic() - started
        print(f"stress: run {run} of {args.runs}: exit {code} in {took:.0f} s", flush=True)
        if code:
            break
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
