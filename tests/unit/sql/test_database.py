import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.schema import CreateTable

from dockyard import sql
from dockyard.exceptions import StoreUnavailableError, TransactionEndedError, UnitOfWorkError
from dockyard.sql import Database, SqlUnitOfWork, metadata


def test_every_table_is_in_the_one_metadata_under_a_plain_name() -> None:
    assert set(metadata.tables) >= {
        "dockyard_events",
        "dockyard_streams",
        "dockyard_snapshots",
        "dockyard_idempotency_keys",
    }
    for table in (
        sql.events_table,
        sql.streams_table,
        sql.snapshots_table,
        sql.idempotency_keys_table,
    ):
        assert table.metadata is metadata
        assert table.comment


def test_constraints_have_names_a_dba_can_read() -> None:
    dialect = PGDialect()  # type: ignore[no-untyped-call]
    ddl = str(CreateTable(sql.events_table).compile(dialect=dialect))
    assert "CONSTRAINT pk_dockyard_events PRIMARY KEY (global_position)" in ddl
    assert "CONSTRAINT uq_dockyard_events_stream_id_stream_version UNIQUE" in ddl
    assert "CONSTRAINT uq_dockyard_events_event_id UNIQUE" in ddl
    assert "SERIAL" not in ddl  # PostgreSQL positions come from transaction ids, not a sequence


def test_sqlite_positions_are_never_reused() -> None:
    ddl = str(CreateTable(sql.events_table).compile(dialect=SQLiteDialect()))
    assert "global_position INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT" in ddl


async def test_create_tables_is_idempotent(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        await database.create_tables()
        await database.create_tables()
        async with database.engine.connect() as connection:
            names = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert set(metadata.tables) <= set(names)
        await sql.drop_tables(database.engine)
        async with database.engine.connect() as connection:
            names = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
        assert not set(metadata.tables) & set(names)
    finally:
        await database.dispose()


async def test_a_unit_of_work_is_used_inside_its_life_only(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    uow = database.unit_of_work()
    try:
        assert isinstance(uow, SqlUnitOfWork)
        with pytest.raises(UnitOfWorkError) as info:
            _ = uow.connection
        assert str(info.value) == (
            "Cannot use the connection: the unit of work has not begun or is already closed. "
            "Hint: use it inside `async with database.unit_of_work() as uow:` "
            "(or the request scope that provides it)."
        )
        async with uow:
            with pytest.raises(UnitOfWorkError, match="has already begun"):
                await uow.begin()
        with pytest.raises(UnitOfWorkError):
            await uow.commit()
        await uow.close()  # closing twice is harmless
    finally:
        await database.dispose()


def test_a_transaction_ended_elsewhere_says_what_to_do() -> None:
    assert str(TransactionEndedError("commit the unit of work")) == (
        "Cannot commit the unit of work: its transaction was ended by something other than "
        "the unit of work, most likely a `Session` built on `uow.connection` that rolled it "
        "back (`session.rollback()`, or a flush that failed), so what was written before that "
        "is gone. Nothing written since is committed either: the unit of work rolled back. "
        "Hint: use the `AsyncSession` that `SqlModule` provides, or build yours with "
        '`join_transaction_mode="create_savepoint"`: either rolls back to a savepoint of its '
        "own; end the transaction only through the unit of work."
    )
    assert isinstance(TransactionEndedError("commit"), UnitOfWorkError)


async def test_an_unreachable_postgres_is_store_unavailable() -> None:
    # port 9 (discard) is closed on any sane test machine
    database = Database("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    try:
        with pytest.raises(StoreUnavailableError) as info:
            async with database.unit_of_work():
                pass
    finally:
        await database.dispose()
    error = info.value
    assert isinstance(error, ConnectionError)
    assert error.operation == "begin a unit of work"
    assert str(error).startswith(
        "The database did not answer while trying to begin a unit of work: "
    )
    assert "Nothing was committed." in str(error)
    assert error.__cause__ is not None


async def test_an_unopenable_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    try:
        with pytest.raises(StoreUnavailableError, match="unable to open database file"):
            await database.create_tables()
    finally:
        await database.dispose()
        # aiosqlite stops the worker thread of a failed connect without awaiting it; let it
        # finish while this test's event loop still exists (else the thread reports a
        # closed loop in whichever test runs next)
        for thread in threading.enumerate():
            if "_connection_worker_thread" in thread.name:
                thread.join(timeout=5)


async def test_a_unit_of_work_returns_its_connection_however_it_ends(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    pool = database.engine.sync_engine.pool
    try:
        await database.create_tables()
        async with database.unit_of_work() as uow:
            await uow.connection.exec_driver_sql("CREATE TABLE t (n INTEGER)")
            assert pool.checkedout() == 1  # type: ignore[attr-defined]

        async def insert_then_fail() -> None:
            async with database.unit_of_work() as uow:
                await uow.connection.exec_driver_sql("INSERT INTO t VALUES (1)")
                raise LookupError

        with pytest.raises(LookupError):
            await insert_then_fail()
        # the one connection is held for the next unit of work (docs/design/unit-of-work.md)
        assert pool.checkedout() == 1  # type: ignore[attr-defined]
        async with database.unit_of_work() as uow:
            found = (await uow.connection.exec_driver_sql("SELECT count(*) FROM t")).scalar()
            in_transaction = uow.connection.in_transaction()
        assert (found, in_transaction) == (0, True)  # committed DDL, rolled-back insert
        assert pool.checkedout() == 1  # type: ignore[attr-defined]
    finally:
        await database.dispose()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


def test_the_postgres_append_binds_exactly_the_fields_of_an_event_row() -> None:
    # one-event appends bind `msgspec.structs.asdict(row)`: the two lists must agree
    from dockyard.eventsourcing._codec import EventRow
    from dockyard.sql._eventsourcing.append_postgres import _FIELDS

    assert tuple(_FIELDS) == EventRow.__struct_fields__
