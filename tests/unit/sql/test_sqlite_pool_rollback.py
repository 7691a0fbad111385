"""SQLite connections go back to the pool outside any transaction, with no needless hop."""

from pathlib import Path

from sqlalchemy.pool import StaticPool

from dockyard.sql import Database


async def test_a_connection_left_mid_transaction_is_rolled_back_on_return(
    tmp_path: Path,
) -> None:
    # One pooled connection, so the next checkout gets the very same driver connection.
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", poolclass=StaticPool)
    try:
        connection = await database.engine.connect()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.execute("BEGIN IMMEDIATE")  # behind SQLAlchemy's back, as a cancel would
        assert driver.in_transaction
        await connection.close()
        assert not driver.in_transaction  # the pool's safety net rolled it back
        async with database.unit_of_work() as uow:  # and BEGIN IMMEDIATE works again
            assert (await uow.connection.exec_driver_sql("SELECT 1")).scalar() == 1
    finally:
        await database.dispose()


async def test_no_rollback_reaches_the_driver_after_a_commit(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", poolclass=StaticPool)
    try:
        connection = await database.engine.connect()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        rollbacks: list[str] = []
        original = driver.rollback

        async def counting_rollback() -> None:
            rollbacks.append("rollback")
            await original()

        driver.rollback = counting_rollback
        await connection.close()
        for _ in range(3):
            async with database.unit_of_work() as uow:
                await uow.connection.exec_driver_sql("SELECT 1")
        assert rollbacks == []
        async with database.unit_of_work() as uow:
            await uow.rollback()  # an explicit rollback inside a transaction still happens
        assert rollbacks == ["rollback"]
    finally:
        await database.dispose()
