"""A saga whose step's circuit breaker was open, in real ``dockyard worker`` processes: the
worker that chose the fallback is killed in it, and a worker whose breaker is closed resumes
the fallback — the branch is in the database, not in the dead process's breaker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from dockyard.sagas import SagaControl, Sagas, SagaStatus
from integration._apps.saga_breaker_worker import GUARDED, build
from integration._apps.saga_processes import WITHIN, open_where, stop
from integration._apps.saga_worker import Job, effects, entered, gate

pytestmark = pytest.mark.slow

APP = "integration._apps.saga_breaker_worker:app"


@pytest.mark.postgres
async def test_a_worker_killed_in_the_fallback_is_recovered_on_the_fallback(
    tmp_path: Path,
) -> None:
    # PostgreSQL only: on SQLite the step waiting at the gate holds the one write lock
    async with open_where("postgres", tmp_path) as where:
        async with where.database.engine.begin() as connection:
            await connection.execute(sa.insert(gate).values(name="gate", is_open=False))
        app = build(where.url, where.schema, run_runner=False)  # the test only starts it
        async with app:
            async with app.scope() as scope:
                await (await scope.get(Sagas)).start(GUARDED, Job("g-1"), saga_id="g-1")
            victim = where.worker(APP, DOCKYARD_TEST_BREAKER_OPEN="1")
            recovering: subprocess.Popen[str] | None = None
            try:
                came_in = sa.select(sa.func.count()).select_from(entered)
                async with asyncio.timeout(WITHIN):
                    while await where.scalar(came_in) < 1:  # in `backup`, at the gate
                        assert victim.poll() is None, await stop(victim)
                        await asyncio.sleep(0.01)
                victim.send_signal(signal.SIGKILL)
                await stop(victim)
                async with where.database.engine.begin() as connection:
                    await connection.execute(sa.update(gate).values(is_open=True))

                recovering = where.worker(APP)  # its breaker is closed: `charge` would run
                control = await app.get(SagaControl)
                async with asyncio.timeout(WITHIN):
                    while (await control.get("g-1")).status is not SagaStatus.COMPLETED:
                        assert recovering.poll() is None, await stop(recovering)
                        await asyncio.sleep(0.05)
            finally:
                stderr = await stop(victim)
                if recovering is not None:
                    stderr = await stop(recovering)  # SIGTERM: a clean exit
            record = await control.get("g-1")
            async with where.database.engine.connect() as connection:
                rows = (await connection.execute(sa.select(effects.c.step, effects.c.writer))).all()
                writers = (await connection.execute(sa.select(entered.c.writer))).scalars().all()

    assert recovering is not None
    assert recovering.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    survivor = f"pid-{recovering.pid}"
    assert writers == [f"pid-{victim.pid}", survivor]  # both entered `backup` …
    assert [(row.step, row.writer) for row in rows] == [("backup", survivor), ("after", survivor)]
    assert [(e.step, e.kind.value) for e in record.log] == [
        ("charge", "circuit_open"),  # the victim's decision, checkpointed before it died
        ("backup", "completed"),
        ("after", "completed"),
    ]
