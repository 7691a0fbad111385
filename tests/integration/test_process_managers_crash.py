"""The event-store-sourced process manager across kill -9: a worker killed in the middle of
applying the log, then two recovering workers → every event applied once (counted in the
database; a second application would break a primary key), no update lost."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import sqlalchemy as sa

from dockyard.eventsourcing import ANY, EventStore
from dockyard.sagas import Processes
from dockyard.sql import Database
from dockyard.testing.pytest import isolated_database
from integration._apps.process_worker import TALLY, Deposited, build, effects, tables
from integration._apps.services import PYTHON, python_env
from services import POSTGRES_URL, require_service

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

COMMAND = "import sys; from dockyard.cli import main; main(sys.argv[1:])"
APP = "integration._apps.process_worker:app"
EVENTS = 400
ACCOUNTS = 5
WITHIN = 180.0
"""Seconds everything may take on a loaded machine; the test waits on conditions, not time."""


@pytest_asyncio.fixture
async def where(tmp_path: Path) -> AsyncIterator[tuple[str, str, Database]]:
    require_service("postgres")
    async with isolated_database(POSTGRES_URL, tmp_path) as isolated:
        assert isolated.schema is not None
        database = isolated.database(pool_size=2, max_overflow=2)
        try:
            await database.create_tables()
            async with database.engine.begin() as connection:
                await connection.run_sync(tables.create_all)
            yield isolated.url, isolated.schema, database
        finally:
            await database.dispose()


def worker(url: str, schema: str) -> subprocess.Popen[str]:
    env = {**python_env(), "DOCKYARD_TEST_PROCESS_URL": url, "DOCKYARD_TEST_SCHEMA": schema}
    return subprocess.Popen(
        [PYTHON, "-c", COMMAND, "worker", APP, "--grace", "20", "--log-level", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.to_thread(process.communicate, timeout=60)
    return stderr


async def test_a_killed_worker_applies_no_event_twice(where: tuple[str, str, Database]) -> None:
    url, schema, database = where
    app = build(url, schema)  # the test appends and reads; its workers apply
    count = sa.select(sa.func.count()).select_from(effects)

    async def applied() -> int:
        async with database.engine.connect() as connection:
            return int(await connection.scalar(count) or 0)

    async with app:
        for first in range(0, EVENTS, 50):
            async with app.scope() as scope:
                store = await scope.get(EventStore)
                for n in range(first, first + 50):
                    account = f"a{n % ACCOUNTS}"
                    await store.append(f"Account-{account}", [Deposited(account, n)], ANY)

        victim = worker(url, schema)
        recovering: list[subprocess.Popen[str]] = []
        try:
            kill_after = random.randint(EVENTS // 8, EVENTS // 2)
            async with asyncio.timeout(WITHIN):
                while await applied() < kill_after:
                    assert victim.poll() is None, await stop(victim)
                    await asyncio.sleep(0.01)
            victim.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait, 60)
            assert await applied() < EVENTS, "the victim finished before the kill"

            recovering = [worker(url, schema), worker(url, schema)]
            async with asyncio.timeout(WITHIN):
                while await applied() < EVENTS:
                    for one in recovering:
                        assert one.poll() is None, await stop(one)
                    await asyncio.sleep(0.05)
        finally:
            for one in [victim, *recovering]:
                await stop(one)

        async with app.scope() as scope:
            processes = await scope.get(Processes)
            tallies = [await processes.get(TALLY, f"a{n}") for n in range(ACCOUNTS)]
    assert await applied() == EVENTS  # each once: the primary key refuses a second
    assert [t.state.deposits if t else None for t in tallies] == [EVENTS // ACCOUNTS] * ACCOUNTS
