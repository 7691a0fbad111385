"""Redeploys of a saga with instances in flight, with real ``dockyard worker`` processes on
PostgreSQL (issue #14).

A worker running version 1 of the 3-step ``job`` saga is stopped (``SIGTERM``, as a redeploy
does) with instances half-way; another deployment takes over:

* new step code under the same name and version, or a version 2 declared compatible with 1:
  every in-flight instance resumes where it stopped and completes, each step's effect written
  once, by the old code before the redeploy and by the new code after it;
* a version 2 that does not declare it can resume version 1: every old instance still in
  flight is parked as failed, at the step it stopped on, with an error naming both versions,
  while version 2's own instances run; none is left running unnoticed. Once a deployment
  declares itself compatible, ``SagaControl.retry`` resumes them and they complete.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard.sagas import SagaControl, SagaStatus
from dockyard.sql import sagas_table
from integration._apps.saga_processes import Where, in_status, open_where, start_jobs, stop
from integration._apps.saga_worker import DEPLOYMENTS, build, counters, effects

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SAGAS = 200
STEPS = ("a", "b", "c")
ACTIVE = (SagaStatus.RUNNING, SagaStatus.COMPENSATING)


@pytest_asyncio.fixture
async def where(tmp_path: Path) -> AsyncIterator[Where]:
    async with open_where("postgres", tmp_path) as found:
        yield found


def _worker(where: Where, deploy: str) -> subprocess.Popen[str]:
    return where.worker(deploy=deploy, concurrency=50, pool_size=8)


async def _stopped(worker: subprocess.Popen[str]) -> None:
    stderr = await stop(worker)
    assert worker.returncode == 0, stderr  # SIGTERM: clean exit
    assert "Traceback" not in stderr, stderr


async def _half_way(where: Where, ids: list[str]) -> dict[str, str]:
    """Run version 1 on ``ids`` and stop it with instances in flight: the step each stopped
    at (its next to run), by id, for those not completed."""
    app = build(where.url, where.schema, run_runner=False)
    async with app:
        await start_jobs(where, app, DEPLOYMENTS["v1"], ids)
    old = _worker(where, "v1")
    try:
        all_effects = sa.select(sa.func.count()).select_from(effects)
        await where.wait_until(all_effects, lambda n: n >= len(ids), [old], every=0.01)
    finally:
        await _stopped(old)
    async with where.database.engine.connect() as connection:
        rows = await connection.execute(
            sa.select(sagas_table.c.saga_id, sagas_table.c.current_step).where(
                sagas_table.c.status == SagaStatus.RUNNING.value
            )
        )
        stopped_at = {row.saga_id: row.current_step for row in rows}
    # in flight: some half-way through (not all still at their first step)
    assert set(stopped_at.values()) - {"a"}, stopped_at
    return stopped_at


async def _effects(where: Where) -> tuple[dict[tuple[str, str], list[str]], dict[str, int]]:
    """The deployments that wrote each step's effect, and each instance's counter."""
    async with where.database.engine.connect() as connection:
        written: dict[tuple[str, str], list[str]] = {}
        for row in await connection.execute(sa.select(effects)):
            written.setdefault((row.saga_id, row.step), []).append(row.deploy)
        counted = {r.saga_id: r.steps for r in await connection.execute(sa.select(counters))}
    return written, counted


def _expected(
    ids: list[str], stopped_at: dict[str, str], new: str
) -> dict[tuple[str, str], list[str]]:
    """Each step written once: by version 1 before the instance's stop, by ``new`` after."""
    expected = {}
    for saga_id in ids:
        first_new = STEPS.index(stopped_at[saga_id]) if saga_id in stopped_at else len(STEPS)
        for n, step in enumerate(STEPS):
            expected[saga_id, step] = ["v1" if n < first_new else new]
    return expected


@pytest.mark.parametrize("deploy", ["v1-patched", "v2-compatible"])
async def test_a_redeploy_resumes_every_instance_in_flight(where: Where, deploy: str) -> None:
    ids = [f"job-{n:04d}" for n in range(SAGAS)]
    stopped_at = await _half_way(where, ids)

    new = _worker(where, deploy)
    try:
        await where.wait_until(in_status(SagaStatus.COMPLETED), lambda n: n == SAGAS, [new])
    finally:
        await _stopped(new)

    written, counted = await _effects(where)
    assert await where.scalar(in_status(SagaStatus.COMPLETED)) == SAGAS  # none parked or lost
    assert written == _expected(ids, stopped_at, deploy)
    assert counted == dict.fromkeys(ids, len(STEPS))


async def test_an_incompatible_version_parks_every_old_instance_until_declared_compatible(
    where: Where,
) -> None:
    ids = [f"job-{n:04d}" for n in range(SAGAS)]
    stopped_at = await _half_way(where, ids)
    new_ids = [f"new-{n:04d}" for n in range(20)]

    v2 = build(where.url, where.schema, run_runner=False, deploy="v2")
    async with v2:
        await start_jobs(where, v2, DEPLOYMENTS["v2"], new_ids)
        worker = _worker(where, "v2")
        try:  # until nothing is left running: every instance completed or parked
            await where.wait_until(in_status(*ACTIVE), lambda n: n == 0, [worker])
        finally:
            await _stopped(worker)
        control = await v2.get(SagaControl)
        parked = {r.saga_id: r for r in await control.list(status=SagaStatus.FAILED, limit=1000)}
    written, _ = await _effects(where)

    assert sorted(parked) == sorted(stopped_at)  # every old instance in flight, and only those
    for saga_id, record in parked.items():
        assert record.step == stopped_at[saga_id]  # where it stopped, untouched
        assert record.error is not None
        assert record.error.startswith("SagaVersionError: "), record.error
        assert f"`{saga_id}` was started as `job` version 1" in record.error, record.error
        assert "this app runs version 2" in record.error, record.error
        assert "compatible_with=(1,)" in record.error, record.error  # how to fix it
    assert {deploys[0] for (saga_id, _), deploys in written.items() if saga_id in ids} == {"v1"}
    assert {(i, s): written[i, s] for i in new_ids for s in STEPS} == {
        (i, s): ["v2"] for i in new_ids for s in STEPS
    }

    compatible = build(where.url, where.schema, run_runner=False, deploy="v2-compatible")
    async with compatible:
        worker = _worker(where, "v2-compatible")
        try:
            control = await compatible.get(SagaControl)
            for saga_id in parked:
                await control.retry(saga_id)
            total = SAGAS + len(new_ids)
            await where.wait_until(in_status(SagaStatus.COMPLETED), lambda n: n == total, [worker])
        finally:
            await _stopped(worker)

    written, counted = await _effects(where)
    assert written == {
        **_expected(ids, stopped_at, "v2-compatible"),
        **{(i, s): ["v2"] for i in new_ids for s in STEPS},
    }
    assert counted == dict.fromkeys(ids + new_ids, len(STEPS))
