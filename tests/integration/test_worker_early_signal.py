"""A worker told to stop while it is still loading its app stops cleanly: exit 0.

An orchestrator may stop a worker it has just started (a rollout cancelled, a scale-down):
SIGTERM or SIGINT then lands before the worker has taken the signals over, where Python's
default ends the process with -15 or a ``KeyboardInterrupt`` traceback.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest

from integration._apps.services import PYTHON, python_env

COMMAND = "import sys; from dockyard.cli import main; main(sys.argv[1:])"
APP = "integration._apps.slow_loading_worker:app"


def _worker(release: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", COMMAND, "worker", APP],
        env={**python_env(), "DOCKYARD_TEST_RELEASE": str(release)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_while_the_app_loads_stops_the_worker_cleanly(
    tmp_path: Path, signum: signal.Signals
) -> None:
    release = tmp_path / "release"
    worker = _worker(release)
    try:
        assert worker.stderr is not None
        first = await asyncio.wait_for(asyncio.to_thread(worker.stderr.readline), 60)
        assert first.strip() == "loading", first  # the app is being imported now
        worker.send_signal(signum)
        release.touch()
        rest = await asyncio.wait_for(asyncio.to_thread(worker.stderr.read), 60)
        code = await asyncio.wait_for(asyncio.to_thread(worker.wait), 60)
    finally:
        release.touch()
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if worker.stderr is not None:
            worker.stderr.close()
    assert code == 0, rest
    assert "Traceback" not in rest, rest
    assert f"{signum.name} before starting; not started" in rest, rest
