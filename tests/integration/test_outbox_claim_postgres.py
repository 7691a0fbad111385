"""The PostgreSQL claim takes advisory locks only for the rows it returns, whatever the plan.

On a table PostgreSQL has no (or stale) statistics for, the planner may scan every pending
row and sort; a claim that evaluates its key locks in that scan would lock the whole
backlog's keys (another claim then gets nothing, and past the shared lock table's size the
claim fails with ``out of shared memory``). See docs/design/outbox-relay.md, "Claiming".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from dockyard.outbox import ClaimedBatch
from dockyard.sql import Database, SqlOutboxStore
from dockyard.testing.pytest import isolated_database
from services import POSTGRES_URL

pytestmark = pytest.mark.postgres

_ROWS = 20_000
_BATCH = 500


async def _fill(connection: AsyncConnection, rows: int, *, keys: int | None = None) -> None:
    """``rows`` pending outbox rows, each with a key of its own unless ``keys`` is given."""
    key = "'k-' || (n % :keys)" if keys is not None else "'k-' || n"
    await connection.execute(
        text(
            "INSERT INTO dockyard_outbox (message_id, destination, type_name, schema_version,"
            " payload, headers, partition_key, created_at, attempts, next_attempt_at, status)"
            f" SELECT 'm-' || n, 'orders', 'Placed', 1, '\\x7b7d', '{{}}', {key}, 0, 0, 0,"
            " 'pending' FROM generate_series(1, :rows) AS n"
        ),
        {"rows": rows, "keys": keys or 1},
    )


async def _no_statistics(database: Database) -> None:
    async with database.unit_of_work() as uow:
        # Never analyzed, and autovacuum must not analyze it during the test.
        await uow.connection.execute(
            text("ALTER TABLE dockyard_outbox SET (autovacuum_enabled = false)")
        )
        await _fill(uow.connection, _ROWS)


async def _stale_statistics(database: Database) -> None:
    async with database.unit_of_work() as uow:
        await uow.connection.execute(
            text("ALTER TABLE dockyard_outbox SET (autovacuum_enabled = false)")
        )
        await _fill(uow.connection, 10)
    async with database.engine.connect() as connection:
        await connection.execute(text("ANALYZE dockyard_outbox"))  # a nearly empty table
        await connection.commit()
    async with database.unit_of_work() as uow:
        await uow.connection.execute(text("DELETE FROM dockyard_outbox"))
        await _fill(uow.connection, _ROWS)


async def _fresh_statistics(database: Database) -> None:
    async with database.unit_of_work() as uow:
        await _fill(uow.connection, _ROWS)
    async with database.engine.connect() as connection:
        await connection.execute(text("ANALYZE dockyard_outbox"))
        await connection.commit()


STATISTICS: dict[str, Callable[[Database], Awaitable[None]]] = {
    "absent": _no_statistics,
    "stale": _stale_statistics,
    "fresh": _fresh_statistics,
}


async def _advisory_locks(batch: ClaimedBatch) -> int:
    # The claiming transaction's own connection: the locks it holds right now.
    connection: AsyncConnection = batch._connection  # type: ignore[attr-defined]
    found = await connection.execute(
        text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
    )
    return int(found.scalar_one())


@pytest.mark.parametrize("statistics", list(STATISTICS))
async def test_two_claims_lock_only_the_keys_they_return(
    postgres_database: Database, statistics: str
) -> None:
    await STATISTICS[statistics](postgres_database)
    store = SqlOutboxStore(postgres_database)
    now = time.time()
    async with store.claim(_BATCH, now) as first:
        first_locks = await _advisory_locks(first)
        async with store.claim(_BATCH, now) as second:
            second_locks = await _advisory_locks(second)
            first_ids = {m.message_id for m in first.messages}
            second_ids = {m.message_id for m in second.messages}
    assert len(first_ids) == _BATCH
    assert first_locks <= _BATCH
    assert len(second_ids) == _BATCH  # 20,000 free keys: the second claim fills up too
    assert second_locks <= _BATCH
    assert not first_ids & second_ids


async def test_a_claim_in_a_backlog_of_keys_other_claims_hold_takes_only_free_keys(
    postgres_database: Database,
) -> None:
    # 2,000 rows over 100 keys: the first claim holds every key in its batch; the second
    # takes none of them and locks nothing for the rows it skipped.
    async with postgres_database.unit_of_work() as uow:
        await _fill(uow.connection, 2_000, keys=100)
    store = SqlOutboxStore(postgres_database)
    now = time.time()
    async with store.claim(50, now) as first, store.claim(50, now) as second:
        first_keys = {m.partition_key for m in first.messages}
        second_keys = {m.partition_key for m in second.messages}
        second_locks = await _advisory_locks(second)
    assert len(first.messages) == 50
    assert len(second.messages) == 50
    assert not first_keys & second_keys
    assert second_locks == len(second_keys)


async def test_claims_with_more_pending_keys_than_the_lock_table_holds(
    postgres_database: Database,
) -> None:
    # The shared lock table holds max_locks_per_transaction x max_connections entries; a
    # claim that locked every pending key would fail here with "out of shared memory".
    async with postgres_database.engine.connect() as connection:
        show = connection.execute
        per_transaction = int((await show(text("SHOW max_locks_per_transaction"))).scalar_one())
        connections = int((await show(text("SHOW max_connections"))).scalar_one())
    async with postgres_database.unit_of_work() as uow:
        await uow.connection.execute(
            text("ALTER TABLE dockyard_outbox SET (autovacuum_enabled = false)")
        )
        await _fill(uow.connection, max(_ROWS, per_transaction * connections + 1_000))
    store = SqlOutboxStore(postgres_database)
    batches = await asyncio.gather(*(_claim_ids(store) for _ in range(3)))
    assert all(len(ids) == _BATCH for ids in batches)


async def _claim_ids(store: SqlOutboxStore) -> set[str]:
    async with store.claim(_BATCH, time.time()) as batch:
        return {m.message_id for m in batch.messages}


async def test_outbox_tables_of_two_schemas_do_not_share_key_locks(
    postgres_database: Database, tmp_path: Path
) -> None:
    # Two apps (or two tests) whose outbox tables live in two schemas of one database: a key
    # one relay holds must not hold back the same key in the other table.
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    async with isolated_database(POSTGRES_URL, other_dir) as isolated:
        other = isolated.database()
        try:
            await other.create_tables()
            for database in (postgres_database, other):
                async with database.unit_of_work() as uow:
                    await _fill(uow.connection, 3, keys=1)  # one key, "k-0", in each table
            now = time.time()
            async with (
                SqlOutboxStore(postgres_database).claim(10, now) as first,
                SqlOutboxStore(other).claim(10, now) as second,
            ):
                assert [m.partition_key for m in first.messages] == ["k-0"] * 3
                assert [m.partition_key for m in second.messages] == ["k-0"] * 3
        finally:
            await other.dispose()
