"""Scale-out and crashes with real processes on PostgreSQL.

Three relay processes share one outbox. Their transport is a table-backed stand-in for a
broker plus a consumer that survives them: ``publish`` commits, in its own transaction, an
arrival row (what the broker received) and, behind the inbox, the consumer's effect row. So:

* every message must arrive at least once, and have exactly one effect;
* without crashes no message arrives twice; with ``kill -9`` only messages of a batch that
  was in flight when its relay died may arrive twice;
* within a partition key, first arrivals follow the outbox order.

Run as a script (``python test_outbox_crash.py relay <schema> <name>``) it is one relay.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from dockyard.outbox import OutboxMessage, OutboxRelay, RelaySettings
from dockyard.sql import Database, SqlOutboxStore, SqlOutboxWriter
from dockyard.transport import TransportMessage

# The runs end when every effect is in or progress stops for a minute (see `run`), which on
# a loaded machine can be later than the suite's per-test timeout.
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

URL = os.environ.get(
    "DOCKYARD_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
DSN = URL.replace("postgresql+asyncpg://", "postgresql://")
MESSAGES = 10_000
KEYS = 40
BATCH = 100
ROOT = Path(__file__).resolve().parents[2]

TEST_TABLES = """
CREATE TABLE crash_arrivals (
    seq BIGSERIAL PRIMARY KEY, message_id TEXT NOT NULL, partition_key TEXT, relay TEXT NOT NULL
);
CREATE TABLE crash_effects (message_id TEXT NOT NULL);
"""


# The server stays up in these tests (only relays die), so commits need not wait for the disk.
SETTINGS = {"search_path": "", "synchronous_commit": "off"}


def database_for(schema: str) -> Database:
    return Database(URL, connect_args={"server_settings": {**SETTINGS, "search_path": schema}})


class TableTransport:
    """Publishing commits the arrival and, once per message id, the consumer's effect."""

    def __init__(self, pool: asyncpg.Pool, relay: str) -> None:
        self.pool = pool
        self.relay = relay

    async def publish(self, message: TransportMessage, /) -> None:
        # One statement, so one transaction: the arrival, the inbox record, and the effect
        # only if the inbox record is new. The record's time is real: the relays' cleanup
        # deletes records past the inbox's retention (with 0 here, a copy published again
        # after a kill had its effect twice).
        await self.pool.execute(
            """WITH arrival AS (
                   INSERT INTO crash_arrivals (message_id, partition_key, relay)
                   VALUES ($1, $2, $3))
               , first AS (
                   INSERT INTO dockyard_inbox (message_id, handler, handled_at)
                   VALUES ($1, 'effects', extract(epoch FROM now()))
                   ON CONFLICT DO NOTHING RETURNING message_id)
               INSERT INTO crash_effects (message_id) SELECT message_id FROM first""",
            message.message_id,
            message.partition_key,
            self.relay,
        )

    async def declare(self, destination: str, group: str) -> None:
        raise NotImplementedError  # only the relay side is exercised here

    def subscribe(self, destination: str, group: str, *, prefetch: int = 1) -> object:
        raise NotImplementedError

    async def close(self) -> None:
        await self.pool.close()


async def relay_main(schema: str, name: str) -> None:
    database = database_for(schema)
    pool = await asyncpg.create_pool(
        DSN, min_size=1, max_size=1, server_settings={**SETTINGS, "search_path": schema}
    )
    relay = OutboxRelay(
        SqlOutboxStore(database),
        TableTransport(pool, name),  # type: ignore[arg-type]  # publish-only stand-in
        RelaySettings(batch_size=BATCH, idle_poll_interval=1.0),
        name=name,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await relay.run(stop)
    await pool.close()
    await database.dispose()


@dataclass
class Outcome:
    arrivals: dict[str, int]
    effects: dict[str, int]
    first_order: dict[str, list[int]]
    kills: int


@pytest_asyncio.fixture
async def schema() -> AsyncIterator[str]:
    name = f"dockyard_crash_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(DSN)
    try:
        await admin.execute(f'CREATE SCHEMA "{name}"')
        database = database_for(name)
        await database.create_tables()
        async with database.engine.begin() as connection:
            for statement in TEST_TABLES.split(";"):
                if statement.strip():
                    await connection.exec_driver_sql(statement)
        await database.dispose()
        yield name
    finally:
        await admin.execute(f'DROP SCHEMA "{name}" CASCADE')
        await admin.close()


def start_relay(schema: str, name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "relay", schema, name],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
    )


async def write_messages(schema: str) -> list[OutboxMessage]:
    """Write the messages in 100 transactions, as an app would, while the relays run."""
    database = database_for(schema)
    written: list[OutboxMessage] = []
    try:
        for chunk in range(MESSAGES // 100):
            now = time.time()
            messages = [
                OutboxMessage(
                    message_id=f"m-{n:05d}",
                    destination="orders",
                    type_name="OrderPlaced",
                    payload=b"{}",
                    partition_key=f"k-{n % KEYS}",
                    created_at=now,
                    next_attempt_at=now,
                )
                for n in range(chunk * 100, chunk * 100 + 100)
            ]
            async with database.unit_of_work() as uow:
                await SqlOutboxWriter(uow).add(messages)
            written.extend(messages)
            await asyncio.sleep(0.005)
    finally:
        await database.dispose()
    return written


async def run(
    schema: str, *, kill: bool, stall: float = 60.0, kill_window: float = 10.0
) -> Outcome:
    """Run three relays (killing them at random for ``kill_window`` seconds if ``kill``) until
    every effect is in, or until no effect came in for ``stall`` seconds: a loaded machine
    makes the run slower, never wrong, so only a stop in progress ends it early."""
    relays = {f"relay-{i}": start_relay(schema, f"relay-{i}") for i in range(3)}
    rng = random.Random(7)
    kills = 0
    connection = await asyncpg.connect(DSN, server_settings={"search_path": schema})
    try:
        writer = asyncio.create_task(write_messages(schema))
        started = progressed = time.monotonic()
        done_before = -1
        while time.monotonic() - progressed < stall:
            await asyncio.sleep(rng.uniform(0.2, 0.6) if kill else 0.2)
            done = await connection.fetchval("SELECT count(*) FROM crash_effects")
            if done >= MESSAGES and writer.done():
                break
            if done != done_before:
                done_before, progressed = done, time.monotonic()
            # Kill at random moments for a while, then let the survivors finish: on a busy
            # machine a relay restarted every half second may never get going again.
            if kill and time.monotonic() - started < kill_window:
                name = rng.choice(sorted(relays))
                relays[name].send_signal(signal.SIGKILL)
                relays[name].wait()
                kills += 1
                relays[name] = start_relay(schema, name)
        await writer
        rows = await connection.fetch("SELECT message_id, partition_key, seq FROM crash_arrivals")
        effects = await connection.fetch("SELECT message_id FROM crash_effects")
    finally:
        for process in relays.values():
            process.send_signal(signal.SIGTERM)
        for process in relays.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        await connection.close()
    arrivals: dict[str, int] = {}
    first_order: dict[str, list[int]] = {}
    for row in sorted(rows, key=lambda r: r["seq"]):
        message_id = row["message_id"]
        if message_id not in arrivals:
            first_order.setdefault(row["partition_key"], []).append(int(message_id[2:]))
        arrivals[message_id] = arrivals.get(message_id, 0) + 1
    counted: dict[str, int] = {}
    for row in effects:
        counted[row["message_id"]] = counted.get(row["message_id"], 0) + 1
    return Outcome(arrivals, counted, first_order, kills)


def check_delivered_once_in_order(outcome: Outcome) -> None:
    expected = {f"m-{n:05d}" for n in range(MESSAGES)}
    assert set(outcome.arrivals) == expected, f"lost: {len(expected - set(outcome.arrivals))}"
    assert set(outcome.effects) == expected
    assert set(outcome.effects.values()) == {1}, "an effect happened twice"
    for key, order in outcome.first_order.items():
        assert order == sorted(order), f"key {key} was reordered"


async def test_three_relays_deliver_every_message_once_without_crashes(schema: str) -> None:
    outcome = await run(schema, kill=False)
    check_delivered_once_in_order(outcome)
    assert set(outcome.arrivals.values()) == {1}, "published twice without a crash"


async def test_relays_killed_at_random_lose_nothing_and_effects_happen_once(
    schema: str,
) -> None:
    outcome = await run(schema, kill=True)
    check_delivered_once_in_order(outcome)
    assert outcome.kills >= 5
    twice = sum(1 for count in outcome.arrivals.values() if count > 1)
    # Only the batch a relay held when it died can be published again.
    assert twice <= outcome.kills * BATCH


if __name__ == "__main__" and sys.argv[1:2] == ["relay"]:
    asyncio.run(relay_main(sys.argv[2], sys.argv[3]))
