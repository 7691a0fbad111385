"""Checked by mypy (not run): what users see when they declare and read process managers.

Each ``assert_type`` fails type checking if inference changes; each ``type: ignore[...]``
fails it (warn_unused_ignores) if mypy stops rejecting the misuse next to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_type

from dockyard.sagas import (
    Process,
    Processes,
    ProcessHandler,
    ProcessInstance,
    ProcessManager,
    handles,
    starts,
)


@dataclass(frozen=True)
class Placed:
    order_id: str


@dataclass(frozen=True)
class Paid:
    order_id: str
    amount: int


@dataclass
class Fulfilment:
    paid: int = 0


class OnPlaced(ProcessHandler[Placed, Fulfilment]):
    async def handle(self, message: Placed, process: Process[Fulfilment]) -> None:
        assert_type(process.state, Fulfilment)
        process.complete()


class OnPaid(ProcessHandler[Paid, Fulfilment]):
    async def handle(self, message: Paid, process: Process[Fulfilment]) -> None:
        process.state.paid += message.amount


fulfilment = ProcessManager(
    "fulfilment",
    version=1,
    state=Fulfilment,
    handlers=[starts(Placed, OnPlaced, key="order_id"), handles(Paid, OnPaid)],
)
assert_type(fulfilment, ProcessManager[Fulfilment])

starts(Paid, OnPlaced)  # type: ignore[misc]  # the handler takes another message


async def read(processes: Processes) -> None:
    found = await processes.get(fulfilment, "o-1")
    assert_type(found, ProcessInstance[Fulfilment] | None)
    if found is not None:
        assert_type(found.state, Fulfilment)
