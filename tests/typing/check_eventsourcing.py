"""Checked by mypy (not run): what users see when they write aggregates' handlers.

Each ``assert_type`` fails type checking if inference changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_type

from dockyard.eventsourcing import retry_on_conflict
from dockyard.messaging import Command, CommandHandler


@dataclass(frozen=True, slots=True, kw_only=True)
class Deposit(Command[int]):
    amount: int


class DepositHandler(CommandHandler[Deposit, int]):
    @retry_on_conflict()  # a retried handle still overrides CommandHandler.handle
    async def handle(self, command: Deposit, /) -> int:
        return command.amount


class RetryingAgain(DepositHandler):
    @retry_on_conflict(max_attempts=10)
    async def handle(self, command: Deposit, /) -> int:
        return await super().handle(command)


async def sent(handler: DepositHandler) -> None:
    assert_type(await handler.handle(Deposit(amount=1)), int)
