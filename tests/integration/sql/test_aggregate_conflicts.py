"""Ten concurrent deposits on one account, each in its own scope, on SQLite and PostgreSQL.

What docs/aggregates.md says of conflicts: a refused save writes and publishes nothing; a retry
runs again in the same scope and transaction and sees what the winner committed, so with
``retry_on_conflict`` no deposit is lost; on SQLite writers queue, so none conflicts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockyard import App, Command, CommandHandler, EventHandler, module, scoped
from dockyard.di import object_
from dockyard.eventsourcing import (
    Aggregate,
    AggregateRepository,
    ConcurrencyError,
    applies,
    retry_on_conflict,
)
from dockyard.testing.pytest import isolated_database
from services import POSTGRES_URL, require_service


@dataclass(frozen=True)
class MoneyDeposited:
    amount: int


class Account(Aggregate):
    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.balance = 0

    def deposit(self, amount: int) -> None:
        self.raise_event(MoneyDeposited(amount))

    @applies
    def _deposited(self, event: MoneyDeposited) -> None:
        self.balance += event.amount


class Accounts(AggregateRepository[Account]): ...


@dataclass(frozen=True)
class Deposit(Command[int]):
    amount: int


class DepositHandler(CommandHandler[Deposit, int]):
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def handle(self, command: Deposit, /) -> int:
        account = await self.accounts.get_or_none("a-1") or self.accounts.create("a-1")
        account.deposit(command.amount)
        await self.accounts.save(account)
        return account.balance


class RetryingDepositHandler(DepositHandler):
    @retry_on_conflict(max_attempts=10)  # ten writers of one stream: ten attempts suffice
    async def handle(self, command: Deposit, /) -> int:
        return await super().handle(command)


class Published(list[object]): ...


class Record(EventHandler[MoneyDeposited]):
    def __init__(self, published: Published) -> None:
        self.published = published

    async def handle(self, event: MoneyDeposited, /) -> None:
        self.published.append(event)


async def _ten_deposits(
    dialect: str, handler: type[DepositHandler], tmp_path: Path
) -> tuple[int, int, int]:
    """How many deposits failed, the balance after them, and how many events were published."""
    url = None
    options: dict[str, Any] = {}
    if dialect == "postgres":
        require_service("postgres")
        url, options = POSTGRES_URL, {"pool_size": 4, "max_overflow": 0}
    published = Published()
    async with isolated_database(url, tmp_path) as isolated:

        @module(
            providers=[scoped(Accounts), object_(published)],
            handlers=[handler, Record],
            imports=[isolated.sql_module(**options)],
        )
        class Bank: ...

        async with App.build(Bank) as app:
            await app.send(Deposit(0))
            results = await asyncio.gather(
                *(app.send(Deposit(10)) for _ in range(10)), return_exceptions=True
            )
            async with app.scope() as scope:
                balance = (await (await scope.get(Accounts)).get("a-1")).balance
    unexpected = [r for r in results if isinstance(r, BaseException)]
    failed = [r for r in unexpected if isinstance(r, ConcurrencyError)]
    assert failed == unexpected
    return len(failed), balance, len(published) - 1


DIALECTS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_refused_deposit_stores_and_publishes_nothing(dialect: str, tmp_path: Path) -> None:
    failed, balance, published = await _ten_deposits(dialect, DepositHandler, tmp_path)
    assert (balance, published) == (10 * (10 - failed), 10 - failed)
    if dialect == "sqlite":
        assert failed == 0  # BEGIN IMMEDIATE: writers queue, a scope's load and save never race


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_retrying_on_conflict_loses_no_deposit(dialect: str, tmp_path: Path) -> None:
    assert await _ten_deposits(dialect, RetryingDepositHandler, tmp_path) == (0, 100, 10)
