"""One LISTEN connection per channel: it wakes every waiter, and comes back after a drop."""

import asyncio
import logging
import uuid

import pytest
import sqlalchemy as sa

from dockyard.sql import Database
from dockyard.sql._listen import PostgresListener

pytestmark = pytest.mark.postgres


def connected(listener: PostgresListener) -> bool:
    return listener._connection is not None


async def notify(database: Database, channel: str) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": channel})


async def woken(wake: asyncio.Event, seconds: float = 5.0) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await wake.wait()
    except TimeoutError:
        return False
    return True


async def test_every_waiter_is_woken_and_the_connection_comes_back(
    postgres_database: Database,
) -> None:
    channel = f"dockyard_test_{uuid.uuid4().hex[:12]}"
    listener = PostgresListener(postgres_database, channel, logging.getLogger("test"))
    first, second = asyncio.Event(), asyncio.Event()
    async with listener.listen(first), listener.listen(second):
        assert await woken(first)  # woken once connected: look at what came before
        first.clear()
        second.clear()
        await notify(postgres_database, channel)
        assert await woken(first)
        assert await woken(second)

        # Drop the LISTEN connection from the server side, as a restart or a proxy would.
        async with postgres_database.engine.begin() as connection:
            killed = await connection.scalar(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE query ILIKE :listen"
                ),
                {"listen": f"%LISTEN%{channel}%"},
            )
        assert killed == 1
        first.clear()
        assert await woken(first)  # the drop itself wakes waiters, so they poll
        for _ in range(100):  # the listener reconnects at once (1 s pause after a failure)
            if connected(listener):
                break
            await asyncio.sleep(0.05)
        assert connected(listener)
        await asyncio.sleep(0.2)  # past the wake-up it gives itself on reconnecting
        first.clear()
        await notify(postgres_database, channel)
        assert await woken(first)
    assert not connected(listener)  # the last waiter leaving closed it
    assert listener._supervisor is None
