"""What the saga tests with real worker processes share: a database, workers, waiting on rows.

``open_where`` makes a database of the test's own (SQLite file or PostgreSQL schema) with
dockyard's tables and ``saga_worker``'s; ``Where.worker`` starts a ``dockyard worker`` process
running ``integration._apps.saga_worker:app`` on it; ``stop`` ends one; ``wait_until`` polls
the database until a count is reached (never a sleep of fixed length).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa

from dockyard.app import App
from dockyard.sagas import Saga, SagaControl, SagaRecord, Sagas, SagaStatus
from dockyard.sql import Database, sagas_table
from dockyard.testing.pytest import isolated_database
from integration._apps.saga_worker import (
    CONCURRENCY,
    DEPLOY,
    JOURNAL,
    LEASE,
    POOL,
    STALL_AFTER,
    Job,
    counters,
    tables,
)
from integration._apps.services import PYTHON, python_env
from services import POSTGRES_URL, require_service

__all__ = ["WITHIN", "Where", "in_status", "open_where", "pages", "start_jobs", "stop"]

COMMAND = "import sys; from dockyard.cli import main; main(sys.argv[1:])"
APP = "integration._apps.saga_worker:app"
WITHIN = 180.0
"""Seconds everything may take on a loaded machine; the test waits on conditions, not time."""


class Where:
    """A database for the test and its worker processes."""

    def __init__(self, url: str, schema: str | None, database: Database) -> None:
        self.url = url
        self.schema = schema
        self.database = database

    def worker(
        self,
        app: str = APP,
        *,
        deploy: str | None = None,
        concurrency: int | None = None,
        lease_ttl: float | None = None,
        pool_size: int | None = None,
        journal: Path | None = None,
        stall_after: int | None = None,
        **more_env: str,
    ) -> subprocess.Popen[str]:
        """A ``dockyard worker`` process running ``saga_worker``'s app (its defaults unless
        told otherwise)."""
        env = {
            **python_env(),
            "DOCKYARD_TEST_SAGA_URL": self.url,
            "DOCKYARD_TEST_LOADED_DIR": str(_LOADED),
            **more_env,
        }
        if self.schema is not None:
            env["DOCKYARD_TEST_SCHEMA"] = self.schema
        for variable, value in (
            (DEPLOY, deploy),
            (CONCURRENCY, concurrency),
            (LEASE, lease_ttl),
            (POOL, pool_size),
            (JOURNAL, journal),
            (STALL_AFTER, stall_after),
        ):
            if value is not None:
                env[variable] = str(value)
        return subprocess.Popen(
            [PYTHON, "-c", COMMAND, "worker", app, "--grace", "20", "--log-level", "WARNING"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def scalar(self, query: sa.Select[int]) -> int:
        async with self.database.engine.connect() as connection:
            return int(await connection.scalar(query) or 0)

    async def wait_until(
        self,
        query: sa.Select[int],
        reached: Callable[[int], bool],
        workers: Iterable[subprocess.Popen[str]] = (),
        *,
        every: float = 0.05,
    ) -> int:
        """Poll ``query`` until ``reached`` says yes (within ``WITHIN``), while every one of
        ``workers`` is alive; return the last value."""
        workers = list(workers)
        async with asyncio.timeout(WITHIN):
            while not reached(value := await self.scalar(query)):
                for worker in workers:
                    assert worker.poll() is None, await stop(worker)
                await asyncio.sleep(every)
        return value


@asynccontextmanager
async def open_where(kind: str, directory: Path) -> AsyncIterator[Where]:
    """A database of its own (``"sqlite"`` or ``"postgres"``) with the tables the apps use."""
    url = None
    if kind == "postgres":
        require_service("postgres")
        url = POSTGRES_URL
    async with isolated_database(url, directory) as isolated:
        database = isolated.database(pool_size=2, max_overflow=2)
        try:
            await database.create_tables()
            async with database.engine.begin() as connection:
                await connection.run_sync(tables.create_all)
            yield Where(isolated.url, isolated.schema, database)
        finally:
            await database.dispose()


def in_status(*statuses: SagaStatus) -> sa.Select[int]:
    """How many instances are in one of ``statuses``."""
    return (
        sa.select(sa.func.count())
        .select_from(sagas_table)
        .where(sagas_table.c.status.in_([s.value for s in statuses]))
    )


async def start_jobs(where: Where, app: App, saga: Saga[Job], ids: Iterable[str]) -> None:
    """Start ``saga`` once per id (100 per transaction), each with its counter at 0."""
    ids = list(ids)
    async with where.database.engine.begin() as connection:
        await connection.execute(sa.insert(counters), [{"saga_id": i, "steps": 0} for i in ids])
    for first in range(0, len(ids), 100):
        async with app.scope() as scope:
            sagas = await scope.get(Sagas)
            for saga_id in ids[first : first + 100]:
                await sagas.start(saga, Job(saga_id), saga_id=saga_id)


_LOADED = Path(tempfile.mkdtemp(prefix="dockyard-loaded-"))
"""Where ``saga_worker`` marks each worker process (by pid) once it is importing the app."""


async def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM (unless it is gone already); its stderr, once it has exited.

    A worker is signalled once it is loading the app (its mark is there): before that it is
    still importing Python and dockyard, where SIGTERM ends any Python program with -15."""
    marked = _LOADED / str(process.pid)
    async with asyncio.timeout(WITHIN):
        while process.poll() is None:
            if marked.exists():
                break
            await asyncio.sleep(0.02)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.to_thread(process.communicate, timeout=60)
    return stderr


async def pages(control: SagaControl) -> AsyncIterator[list[SagaRecord]]:
    """Every instance, 100 at a time."""
    after: str | None = None
    while page := await control.list(limit=100, after=after):
        yield list(page)
        after = page[-1].saga_id
