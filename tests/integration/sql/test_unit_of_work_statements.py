"""``SqlUnitOfWork.fetch_rows`` and ``execute_count``: statements in the unit of work's
transaction, on asyncpg itself where the driver path is on, answering as SQLAlchemy would.

Run on both dialects and, on PostgreSQL, on the driver path and on the pool path (a listener
on the engine turns the driver path off).
"""

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError

from dockyard.sql import Database

ADD = sa.text("INSERT INTO notes (n, body) VALUES (:n, :body) RETURNING n")
BODY = sa.text("SELECT body FROM notes WHERE n = :n")
GROW = sa.text("UPDATE notes SET body = body || :more WHERE n >= :from_n")


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("postgres-pool", marks=pytest.mark.postgres),
    ]
)
def on_path(request: pytest.FixtureRequest) -> Database:
    """Each dialect's database; PostgreSQL's also with the driver path off."""
    dialect, _, path = request.param.partition("-")
    database: Database = request.getfixturevalue(f"{dialect}_database")
    if path == "pool":
        event.listen(database.engine.sync_engine, "commit", lambda _: None)
        assert not database.connections.fast_path()
    return database


@pytest_asyncio.fixture
async def notes(on_path: Database) -> AsyncIterator[Database]:
    async with on_path.unit_of_work() as uow:
        await uow.connection.execute(sa.text("CREATE TABLE notes (n int PRIMARY KEY, body text)"))
    yield on_path


async def test_rows_and_counts_in_the_transaction(notes: Database) -> None:
    async with notes.unit_of_work() as uow:
        assert await uow.fetch_rows(ADD, {"n": 1, "body": "a"}) == [(1,)]
        await uow.connection.execute(ADD, {"n": 2, "body": "b"})  # both ways, one transaction
        assert await uow.execute_count(GROW, {"more": "!", "from_n": 1}) == 2
        assert [tuple(r) for r in await uow.fetch_rows(BODY, {"n": 2})] == [("b!",)]
    async with notes.unit_of_work() as uow:
        assert [tuple(r) for r in await uow.fetch_rows(BODY, {"n": 1})] == [("a!",)]
        assert await uow.fetch_rows(BODY, {"n": 9}) == []


async def test_a_rolled_back_unit_of_work_leaves_nothing(notes: Database) -> None:
    async def add_then_fail() -> None:
        async with notes.unit_of_work() as uow:
            await uow.fetch_rows(ADD, {"n": 1, "body": "a"})
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await add_then_fail()
    async with notes.unit_of_work() as uow:
        assert await uow.fetch_rows(BODY, {"n": 1}) == []


async def test_a_statement_the_server_refuses_raises_what_sqlalchemy_raises(
    notes: Database,
) -> None:
    async with notes.unit_of_work() as uow:
        await uow.fetch_rows(ADD, {"n": 1, "body": "a"})
    with pytest.raises(IntegrityError):
        async with notes.unit_of_work() as uow:
            await uow.fetch_rows(ADD, {"n": 1, "body": "again"})
    # rolled back, and the next unit of work runs (on a connection in a clean state)
    async with notes.unit_of_work() as uow:
        assert await uow.execute_count(GROW, {"more": "?", "from_n": 1}) == 1
        assert [tuple(r) for r in await uow.fetch_rows(BODY, {"n": 1})] == [("a?",)]


PUT = sa.text("INSERT INTO notes (n, body) VALUES (:n, :body)")


@pytest.mark.parametrize("count", [1, 3])
async def test_many_rows_in_the_transaction(notes: Database, count: int) -> None:
    rows = [{"n": n, "body": f"b{n}"} for n in range(count)]
    async with notes.unit_of_work() as uow:
        await uow.execute_many(PUT, [])  # nothing to send
        await uow.execute_many(PUT, rows)
        assert await uow.execute_count(GROW, {"more": "!", "from_n": 0}) == count
    async with notes.unit_of_work() as uow:
        got = await uow.fetch_rows(sa.text("SELECT n, body FROM notes ORDER BY n"), {})
    assert [tuple(r) for r in got] == [(n, f"b{n}!") for n in range(count)]


async def test_many_rows_roll_back_together(notes: Database) -> None:
    async with notes.unit_of_work() as uow:
        await uow.fetch_rows(ADD, {"n": 2, "body": "taken"})
    with pytest.raises(IntegrityError):  # the third row's key is taken: none of them stays
        async with notes.unit_of_work() as uow:
            await uow.execute_many(PUT, [{"n": n, "body": "new"} for n in range(4)])
    async with notes.unit_of_work() as uow:
        got = await uow.fetch_rows(sa.text("SELECT n, body FROM notes ORDER BY n"), {})
    assert [tuple(r) for r in got] == [(2, "taken")]
