"""Two worker processes for one projection: one applies, the other takes over after kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard.eventsourcing import ANY, EventStore
from dockyard.projections import ProjectionControl
from dockyard.sql import Database
from dockyard.testing.pytest import isolated_database
from integration.projections_app import Deposited, applied, build_app, create_read_models
from services import POSTGRES_URL, require_service

TESTS = Path(__file__).resolve().parents[1]
LEASE_TTL = 1.5  # what projections_app configures


@pytest_asyncio.fixture
async def shared_schema(tmp_path: Path) -> AsyncIterator[tuple[Database, str]]:
    """A schema of the test's own, shared with the worker processes it starts."""
    require_service("postgres")
    async with isolated_database(POSTGRES_URL, tmp_path) as isolated:
        assert isolated.schema is not None
        database = isolated.database()
        try:
            await database.create_tables()
            await create_read_models(database)
            yield database, isolated.schema
        finally:
            await database.dispose()


def _worker(schema: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "integration.projections_app", POSTGRES_URL, schema],
        cwd=TESTS,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{TESTS.parent / 'src'}"},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


async def _owner_pid(control: ProjectionControl) -> int | None:
    status = await control.status_of("balances")
    return int(status.owner.split(":")[1]) if status.owner else None


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_killed_owner_is_replaced_and_no_event_is_applied_twice(
    shared_schema: tuple[Database, str],
) -> None:
    database, schema = shared_schema
    workers = [_worker(schema), _worker(schema)]
    try:
        async with build_app(database) as app:
            control = await app.get(ProjectionControl)

            async def append(count: int, start: int) -> None:
                for i in range(start, start + count):
                    async with app.scope() as scope:
                        store = await scope.get(EventStore)
                        await store.append(f"Account-{i % 7}", [Deposited(f"a{i % 7}", i)], ANY)

            await append(100, 0)
            deadline = time.monotonic() + 10
            while (owner := await _owner_pid(control)) is None:
                assert time.monotonic() < deadline, "no worker took the lease"
                await asyncio.sleep(0.05)
            first_head = await control.head()
            while (await control.status_of("balances")).position < first_head:
                assert time.monotonic() < deadline, "the owner did not apply the first events"
                await asyncio.sleep(0.05)
            victim = next(w for w in workers if w.pid == owner)
            survivor = next(w for w in workers if w.pid != owner)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            killed_at = time.monotonic()
            await append(100, 100)  # written while nobody applies

            while await _owner_pid(control) != survivor.pid:
                # takeover is promised within ttl * 4 / 3; allow for a busy machine
                assert time.monotonic() - killed_at < LEASE_TTL * 4 / 3 + 2.0
                await asyncio.sleep(0.05)
            head = await control.head()
            while (await control.status_of("balances")).position < head:
                assert time.monotonic() - killed_at < 15
                await asyncio.sleep(0.05)

        async with database.engine.connect() as connection:
            rows = (await connection.execute(sa.select(applied.c.writer))).scalars().all()
        assert len(rows) == 200  # primary key on the position: a duplicate would have failed
        assert set(rows) == {f"pid-{victim.pid}", f"pid-{survivor.pid}"}
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(timeout=10) == 0  # stopped cleanly: in-flight batch done
        async with app:
            control = await app.get(ProjectionControl)
            assert (await control.status_of("balances")).owner is None  # lease released
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=10)
            assert worker.stdout is not None
            worker.stdout.close()
