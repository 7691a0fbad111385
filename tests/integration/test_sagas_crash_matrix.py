"""Issue #14's crash matrix on PostgreSQL, with real ``dockyard worker`` processes.

1,000 sagas of three database-only steps, a worker running 50 of them at once, ``kill -9`` of
that worker at a random point, then 1, 2 or 3 recovering workers started together. Counted:

* **lost**: instances not completed, or completed without a step's effect or count (or with a
  state that missed one);
* **run twice by recovery**: step *attempts*, read from journals each worker appends to before
  a step writes anything (so attempts that never committed count too). The one re-run
  allowed is the step the killed worker was in when it died, once;
* **duplicates**: a step's effect there more than once (one row per ``(saga_id, step)``, and
  no constraint keeps a second out), or an instance's counter (one per step) above 3.

Each run prints its numbers (``pytest -s`` shows them); the three take about 40 s in all.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard.sagas import SagaControl, SagaRecord, SagaStatus
from dockyard.sql import sagas_table
from integration._apps.saga_processes import Where, in_status, open_where, pages, start_jobs, stop
from integration._apps.saga_worker import JOB, Job, build, counters, effects

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SAGAS = 1000
IN_FLIGHT = 50
STEPS = ("a", "b", "c")
LEASE = 10.0
"""Every worker's lease (the default); the killed worker's instances wait that long for
recovery. Not shorter: on a loaded machine a runner's heartbeat can come seconds late (it
waits for a pooled connection behind the steps: concurrency 50, pool 8), the lease lapses, and
another recovering worker takes the instance over and runs the step a second time (fenced: one
attempt rolls back). Its own claims no longer take it back (``holding``): with 2.0 the runs
with 1 and 2 recovering workers pass, the one with 3 does not."""
POOL = 8


@pytest_asyncio.fixture
async def where(tmp_path: Path) -> AsyncIterator[Where]:
    async with open_where("postgres", tmp_path) as found:
        yield found


@dataclass(frozen=True, slots=True)
class Outcome:
    lost: int
    run_twice: int
    duplicates: int
    in_flight_at_kill: int
    rerun_after_kill: int
    seconds_to_recover: float

    def __str__(self) -> str:
        return (
            f"lost {self.lost}, run twice by recovery {self.run_twice}, duplicates "
            f"{self.duplicates}; {self.in_flight_at_kill} held by the killed worker, "
            f"{self.rerun_after_kill} of its uncommitted steps re-run once; recovered in "
            f"{self.seconds_to_recover:.1f} s"
        )


@pytest.mark.parametrize("recovering_workers", [1, 2, 3])
async def test_kill_9_with_50_in_flight_then_recovery_loses_nothing_and_runs_no_step_twice(
    where: Where, recovering_workers: int, tmp_path: Path
) -> None:
    seed = random.randrange(2**32)
    kill_after = random.Random(seed).randint(SAGAS // 4, 2 * SAGAS)  # effects before the kill
    context = f"{SAGAS} sagas, kill -9 after {kill_after} effects (seed {seed})"
    journals = tmp_path / "journals"
    journals.mkdir()
    ids = [f"job-{n:04d}" for n in range(SAGAS)]
    app = build(where.url, where.schema, run_runner=False)  # the test only starts sagas
    async with app:
        await start_jobs(where, app, JOB, ids)

        def worker() -> subprocess.Popen[str]:
            return where.worker(
                concurrency=IN_FLIGHT, lease_ttl=LEASE, pool_size=POOL, journal=journals
            )

        all_effects = sa.select(sa.func.count()).select_from(effects)
        victim = worker()
        recovering: list[subprocess.Popen[str]] = []
        logs: list[str] = []
        try:
            await where.wait_until(all_effects, lambda n: n >= kill_after, [victim], every=0.01)
            victim.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait, 60)
            held = (
                sa.select(sa.func.count())
                .select_from(sagas_table)
                .where(
                    sagas_table.c.owner.like(f"%:{victim.pid}:%"),
                    sagas_table.c.status == SagaStatus.RUNNING.value,
                )
            )
            in_flight_at_kill = await where.scalar(held)

            started = time.monotonic()
            recovering = [worker() for _ in range(recovering_workers)]
            completed = in_status(SagaStatus.COMPLETED)
            with contextlib.suppress(TimeoutError):  # then the counts below say what is missing
                await where.wait_until(completed, lambda n: n == SAGAS, recovering)
            seconds = time.monotonic() - started
        finally:
            for process in [victim, *recovering]:
                stderr = await stop(process)
                logs.append(f"pid {process.pid}:\n{stderr}")
                if process is not victim:
                    assert process.returncode == 0, stderr  # SIGTERM: clean exit
                    assert "Traceback" not in stderr, stderr

        control = await app.get(SagaControl)
        instances: list[SagaRecord] = []
        async for page in pages(control):
            instances += page
        finished = {
            r.saga_id
            for r in instances
            if r.status is SagaStatus.COMPLETED
            and isinstance(state := control.state(r), Job)
            and state.steps_done == len(STEPS)
        }
        async with where.database.engine.connect() as connection:
            rows = (await connection.execute(sa.select(effects))).all()
            counted = {r.saga_id: r.steps for r in await connection.execute(sa.select(counters))}

    effect_rows = Counter((row.saga_id, row.step) for row in rows)
    committed_by = {(row.saga_id, row.step): row.writer for row in rows}
    victim_writer = f"pid-{victim.pid}"
    attempts = _attempts(journals)
    victim_attempts = attempts.pop(victim_writer, Counter())
    recovery_attempts: Counter[tuple[str, str]] = Counter()
    for journal in attempts.values():
        recovery_attempts.update(journal)

    expected = {(saga_id, step) for saga_id in ids for step in STEPS}
    incomplete = {
        saga_id
        for saga_id in ids
        if saga_id not in finished
        or counted[saga_id] < len(STEPS)
        or any(effect_rows[saga_id, step] == 0 for step in STEPS)
    }
    duplicates = {key: n for key, n in effect_rows.items() if n > 1 or key not in expected}
    duplicates |= {(i, "counter"): n for i, n in counted.items() if n > len(STEPS)}
    twice = {
        key: (victim_attempts[key], recovery_attempts[key])
        for key in expected
        if victim_attempts[key] > 1
        or recovery_attempts[key] > 1
        or (recovery_attempts[key] and committed_by.get(key) == victim_writer)
    }
    rerun = sum(1 for key in expected if victim_attempts[key] and recovery_attempts[key])
    outcome = Outcome(
        lost=len(incomplete),
        run_twice=len(twice),
        duplicates=len(duplicates),
        in_flight_at_kill=in_flight_at_kill,
        rerun_after_kill=rerun,
        seconds_to_recover=seconds,
    )
    print(f"\ncrash matrix, {recovering_workers} recovering: {context}: {outcome}")

    assert len(instances) == SAGAS, f"{context}: instances missing"
    assert sorted(incomplete) == [], f"{context}: lost, or completed without a step's effect"
    assert twice == {}, (
        f"{context}: (killed worker's, recovery's) attempts of a step: {twice}; the workers "
        "said:\n" + "\n".join(logs)
    )
    assert duplicates == {}, f"{context}: effects (or counters) there more than once"
    assert {r.owner for r in instances} == {None}  # the leases were released on SIGTERM
    # the kill landed in the middle, and recovery did the rest
    assert victim_writer in set(committed_by.values()), context
    assert set(committed_by.values()) - {victim_writer}, context
    assert in_flight_at_kill > 0, context


def _attempts(journals: Path) -> dict[str, Counter[tuple[str, str]]]:
    """Each process's step attempts, by writer name (``pid-N``)."""
    found: dict[str, Counter[tuple[str, str]]] = {}
    for path in journals.glob("attempts-*.log"):
        pid = path.stem.removeprefix("attempts-")
        journal = found[f"pid-{pid}"] = Counter()
        for line in path.read_text().splitlines():
            saga_id, step = line.split(" ")
            journal[saga_id, step] += 1
    return found
