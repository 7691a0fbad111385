"""Saga runners in real ``dockyard worker`` processes: killed, paused, and recovered.

* ``kill -9`` a worker at a random point with sagas in flight, then start one, two or three
  workers together: every saga completes, and every step's database effect is there exactly once
  (counted in the database: a step run twice would leave two rows).
* ``SIGSTOP`` a worker inside a step until its lease has expired (judged by the database's
  clock): another worker takes the saga over and completes it; once the paused worker runs
  again, its checkpoint is refused and its transaction rolled back, effect included.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard.sagas import SagaControl, Sagas, SagaStatus
from dockyard.sql import sagas_table
from integration._apps.saga_processes import WITHIN, Where, open_where, pages, stop
from integration._apps.saga_worker import (
    GATED,
    JOB,
    Job,
    build,
    effects,
    entered,
    gate,
)

pytestmark = pytest.mark.slow

SAGAS = int(os.environ.get("DOCKYARD_TEST_CRASH_SAGAS", "150"))


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def where(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Where]:
    async with open_where(request.param, tmp_path) as found:
        yield found


@pytest_asyncio.fixture
async def postgres_where(tmp_path: Path) -> AsyncIterator[Where]:
    async with open_where("postgres", tmp_path) as found:
        yield found


@pytest.mark.parametrize("recovering_workers", [1, 2, 3])
async def test_a_killed_worker_loses_nothing_and_recovery_runs_no_step_twice(
    where: Where, recovering_workers: int
) -> None:
    app = build(where.url, where.schema, run_runner=False)  # the test only starts sagas
    async with app:
        for first in range(0, SAGAS, 50):
            async with app.scope() as scope:  # 50 starts per transaction
                sagas = await scope.get(Sagas)
                for n in range(first, min(first + 50, SAGAS)):
                    await sagas.start(JOB, Job(f"job-{n:04d}"), saga_id=f"job-{n:04d}")

        # The victim's step attempts after a random number of them wait, before writing, until
        # it is killed: the kill lands with steps in flight at that point. (Killing once a poll
        # saw that many effects raced a fast victim: on SQLite one finished every saga between
        # the poll and the SIGKILL, even with the kill after at most a third of them.)
        kill_after = random.randint(SAGAS // 4, SAGAS)
        victim = where.worker(stall_after=kill_after)
        recovering: list[subprocess.Popen[str]] = []
        try:
            count = sa.select(sa.func.count()).select_from(effects)
            async with asyncio.timeout(WITHIN):
                while await where.scalar(count) < kill_after:
                    assert victim.poll() is None, await stop(victim)
                    await asyncio.sleep(0.01)
            victim.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait, 60)
            killed_at = await where.scalar(count)

            recovering = [where.worker() for _ in range(recovering_workers)]  # together
            completed = (
                sa.select(sa.func.count())
                .select_from(sagas_table)
                .where(sagas_table.c.status == SagaStatus.COMPLETED.value)
            )
            async with asyncio.timeout(WITHIN):
                while await where.scalar(completed) < SAGAS:
                    for worker in recovering:
                        assert worker.poll() is None, await stop(worker)
                    await asyncio.sleep(0.05)
        finally:
            ended = [(worker, await stop(worker)) for worker in [victim, *recovering]]
            for worker, stderr in ended[1:]:  # every one stopped before any is judged
                assert worker.returncode == 0, stderr  # SIGTERM: clean exit
                assert "Traceback" not in stderr, stderr

        control = await app.get(SagaControl)
        instances = []
        async for page in pages(control):
            instances += page
        async with where.database.engine.connect() as connection:
            rows = (await connection.execute(sa.select(effects))).all()

    assert len(instances) == SAGAS  # nothing lost
    assert {r.status for r in instances} == {SagaStatus.COMPLETED}
    assert {r.owner for r in instances} == {None}  # the leases were released on SIGTERM
    per_step: dict[tuple[str, str], int] = {}
    for row in rows:
        per_step[row.saga_id, row.step] = per_step.get((row.saga_id, row.step), 0) + 1
    twice = {key: n for key, n in per_step.items() if n != 1}
    assert twice == {}, f"steps whose effect is not there exactly once: {twice}"
    assert len(per_step) == 3 * SAGAS
    writers = {row.writer for row in rows}
    assert killed_at == kill_after, f"killed after {killed_at} effects, not {kill_after}"
    assert f"pid-{victim.pid}" in writers  # the victim did work before it died …
    assert writers & {f"pid-{w.pid}" for w in recovering}  # … and recovery did the rest


@pytest.mark.postgres
async def test_a_worker_paused_past_its_lease_has_its_checkpoint_refused(
    postgres_where: Where,
) -> None:
    # PostgreSQL only: on SQLite a paused step holds the one write lock, so nobody can take over
    where = postgres_where
    async with where.database.engine.begin() as connection:
        await connection.execute(sa.insert(gate).values(name="gate", is_open=False))
    app = build(where.url, where.schema, run_runner=False)
    async with app:
        async with app.scope() as scope:
            await (await scope.get(Sagas)).start(GATED, Job("gated-1"), saga_id="gated-1")
        paused = where.worker()
        taking_over: subprocess.Popen[str] | None = None
        try:
            entries = sa.select(sa.func.count()).select_from(entered)
            async with asyncio.timeout(WITHIN):
                while await where.scalar(entries) < 1:  # the step has begun in `paused`
                    assert paused.poll() is None, await stop(paused)
                    await asyncio.sleep(0.01)
            paused.send_signal(signal.SIGSTOP)

            expired = (
                sa.select(sa.func.count())
                .select_from(sagas_table)
                .where(
                    sagas_table.c.saga_id == "gated-1",
                    sagas_table.c.lease_until < sa.func.extract("epoch", sa.func.clock_timestamp()),
                )
            )
            async with asyncio.timeout(WITHIN):
                while not await where.scalar(expired):  # noqa: ASYNC110 - database clock
                    await asyncio.sleep(0.05)
            async with where.database.engine.begin() as connection:
                await connection.execute(sa.update(gate).values(is_open=True))
            taking_over = where.worker()
            control = await app.get(SagaControl)
            async with asyncio.timeout(WITHIN):
                while (await control.get("gated-1")).status is not SagaStatus.COMPLETED:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            completed_version = (await control.get("gated-1")).version

            paused.send_signal(signal.SIGCONT)  # its step goes on, to its checkpoint
            paused_stderr = await stop(paused)  # finishes the attempt in flight, then exits
        finally:
            for worker in (paused, taking_over):
                if worker is not None and worker.poll() is None:
                    os.kill(worker.pid, signal.SIGCONT)
                    await stop(worker)
        record = await control.get("gated-1")
        async with where.database.engine.connect() as connection:
            writers = (await connection.execute(sa.select(effects.c.writer))).scalars().all()
            came_in = (await connection.execute(sa.select(entered.c.writer))).scalars().all()

    assert paused.returncode == 0, paused_stderr
    assert "checkpoint refused" in paused_stderr, paused_stderr
    assert taking_over is not None
    assert came_in == [f"pid-{paused.pid}", f"pid-{taking_over.pid}"]  # both ran the step …
    assert writers == [f"pid-{taking_over.pid}"]  # … one effect stayed: the new owner's
    assert record.status is SagaStatus.COMPLETED
    assert record.version == completed_version  # the paused runner changed nothing
