"""SIGTERM stops a real ``dockyard worker`` cleanly: exit 0, no traceback.

The worker has the shape seen in production (PostgreSQL, the outbox on SQL storage, a catch-up
projection). Its projection renews a short lease all the time, so over several runs the signal
lands while a renewal is in flight, and the runner cancels that renewal on its way out: nothing
that runs at the end of a transaction may turn that cancellation into an error.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time

import asyncpg
import pytest

from integration._apps.services import (
    POSTGRES_DSN,
    PYTHON,
    create_schema,
    drop_schema,
    python_env,
    unique,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

RUNS = 8
COMMAND = "import sys; from dockyard.cli import main; main(sys.argv[1:])"
APP = "integration._apps.stopping_worker:app"


def _worker(schema: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", COMMAND, "worker", APP, "--grace", "10"],
        env={**python_env(), "DOCKYARD_TEST_SCHEMA": schema},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _renewals(schema: str, count: int) -> None:
    """Wait until the projection's lease was taken and then renewed ``count`` times."""
    connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": schema})
    try:
        deadline = time.monotonic() + 30
        seen: list[float] = []
        while len(seen) <= count:
            assert time.monotonic() < deadline, f"the lease was renewed {len(seen)} times"
            expires = await connection.fetchval(
                "SELECT expires_at FROM dockyard_projection_leases WHERE name = 'ticks'"
            )
            if expires is not None and (not seen or expires != seen[-1]):
                seen.append(expires)
            await asyncio.sleep(0.02)
    finally:
        await connection.close()


async def test_sigterm_stops_the_worker_with_exit_0_and_no_traceback() -> None:
    schema = unique("dockyard_test_stop").replace("-", "_")
    await create_schema(schema)
    try:
        for run in range(RUNS):
            worker = _worker(schema)
            try:
                await _renewals(schema, 1 + run % 3)
            finally:
                worker.send_signal(signal.SIGTERM)
                _, stderr = await asyncio.to_thread(worker.communicate, timeout=30)
            assert "Traceback" not in stderr, f"run {run}:\n{stderr}"
            assert worker.returncode == 0, f"run {run}: exit {worker.returncode}\n{stderr}"
    finally:
        await drop_schema(schema)
