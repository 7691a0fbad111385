"""What runs when a unit of work's transaction ends: ``after_commit`` and ``after_rollback``.

Both paths of the unit of work run them the same way: the driver path, and SQLAlchemy's pool
path (taken when a listener on the engine asks for it, docs/design/unit-of-work.md).
"""

import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from dockyard.sql import Database, SqlUnitOfWork


@pytest.fixture(params=["driver", "pool"])
def path(request: pytest.FixtureRequest) -> str:
    """Which way the unit of work runs its transaction."""
    return str(request.param)


@pytest.fixture
def database(database: Database, path: str) -> Iterator[Database]:
    def on_checkout(*_: object) -> None:
        pass

    engine = database.engine.sync_engine
    if path == "pool":
        event.listen(engine, "checkout", on_checkout)
    assert database.connections.fast_path() is (path == "driver")
    yield database
    if path == "pool":
        event.remove(engine, "checkout", on_checkout)


def _record(uow: SqlUnitOfWork, seen: list[str], name: str) -> None:
    uow.after_commit(lambda: seen.append(f"{name} committed"))
    uow.after_rollback(lambda: seen.append(f"{name} rolled back"))


async def _write(uow: SqlUnitOfWork) -> None:
    await uow.connection.execute(sa.text("SELECT 1"))


async def test_a_commit_runs_the_commit_callbacks_after_the_commit(database: Database) -> None:
    seen: list[str] = []
    async with database.unit_of_work() as uow:
        await _write(uow)
        _record(uow, seen, "first")
        first = uow.connection.get_transaction()
        assert first is not None
        uow.after_commit(lambda: seen.append(f"still open: {first.is_active}"))
        assert seen == []
        await uow.commit()
        assert seen == ["first committed", "still open: False"]
        _record(uow, seen, "second")
    assert seen[2:] == ["second committed"]  # leaving the block commits too


async def test_an_error_runs_the_rollback_callbacks(database: Database) -> None:
    seen: list[str] = []

    async def fail() -> None:
        async with database.unit_of_work() as uow:
            await _write(uow)
            _record(uow, seen, "first")
            raise LookupError

    with pytest.raises(LookupError):
        await fail()
    assert seen == ["first rolled back"]


async def test_each_transaction_runs_only_its_own_callbacks(database: Database) -> None:
    seen: list[str] = []
    async with database.unit_of_work() as uow:
        await _write(uow)
        _record(uow, seen, "first")
        await uow.commit()
        await _write(uow)
        _record(uow, seen, "second")
        await uow.rollback()
        _record(uow, seen, "third")  # nothing written, nothing committed: still its outcome
    assert seen == ["first committed", "second rolled back", "third committed"]


async def test_closing_with_work_left_runs_the_rollback_callbacks(database: Database) -> None:
    seen: list[str] = []
    uow = database.unit_of_work()
    await uow.begin()
    await _write(uow)
    _record(uow, seen, "first")
    await uow.close()
    assert seen == ["first rolled back"]
    async with database.unit_of_work() as uow:  # the connection is clean for the next
        assert (await uow.connection.execute(sa.text("SELECT 2"))).scalar() == 2


async def test_a_callback_registered_twice_runs_once(database: Database) -> None:
    seen: list[str] = []

    def note() -> None:
        seen.append("noted")

    async with database.unit_of_work() as uow:
        uow.after_commit(note)
        uow.after_commit(note)
    assert seen == ["noted"]


async def test_a_failing_callback_is_logged_and_the_commit_still_succeeds(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    def fail() -> None:
        raise ValueError("broken callback")

    async with database.engine.begin() as connection:
        await connection.exec_driver_sql("CREATE TABLE notes (note TEXT)")
    with caplog.at_level(logging.ERROR, logger="dockyard.sql"):
        async with database.unit_of_work() as uow:
            await uow.connection.exec_driver_sql("INSERT INTO notes VALUES ('kept')")
            uow.after_commit(fail)
            uow.after_commit(lambda: seen.append("after the failure"))
    assert seen == ["after the failure"]
    assert "after-commit callback failed" in caplog.text
    assert "broken callback" in caplog.text
    async with database.engine.connect() as connection:
        assert (await connection.exec_driver_sql("SELECT note FROM notes")).scalar() == "kept"


async def test_leaving_the_block_flushes_before_it_commits(database: Database) -> None:
    seen: list[str] = []

    async def flush() -> None:
        seen.append("flushed")
        await uow.connection.execute(sa.text("CREATE TABLE flushed_on_exit (n int)"))

    async with database.unit_of_work() as uow:
        await _write(uow)
        uow.on_flush(flush)
        _record(uow, seen, "block")
    assert seen == ["flushed", "block committed"]
    async with database.unit_of_work() as uow:
        result = await uow.connection.execute(sa.text("SELECT count(*) FROM flushed_on_exit"))
        assert result.scalar_one() == 0
        await uow.connection.execute(sa.text("DROP TABLE flushed_on_exit"))


async def test_a_failing_flush_on_leaving_the_block_rolls_back(database: Database) -> None:
    seen: list[str] = []

    async def flush() -> None:
        raise LookupError("the writer could not flush")

    async def write_and_leave() -> None:
        async with database.unit_of_work() as uow:
            await uow.connection.execute(sa.text("CREATE TABLE never_committed (n int)"))
            uow.on_flush(flush)
            _record(uow, seen, "block")

    with pytest.raises(LookupError, match="could not flush"):
        await write_and_leave()
    assert seen == ["block rolled back"]
    async with database.unit_of_work() as uow:
        tables = await uow.connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        assert "never_committed" not in tables
