"""``CommitNotices`` coalesces: one NOTIFY in flight per process, one more for what came
meanwhile (sql/_notices.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from dockyard.sql._notices import CommitNotices


class _Connection:
    def __init__(self, sent: list[str], gate: asyncio.Event) -> None:
        self.sent, self.gate = sent, gate

    async def exec_driver_sql(self, statement: str) -> None:
        await self.gate.wait()
        self.sent.append(statement)


class _Unit:
    def __init__(self, connection: _Connection) -> None:
        self.connection = connection


class _Connections:
    def fast_path(self) -> bool:
        return False  # the unit-of-work path (the driver path is tested on PostgreSQL)


class _Database:
    """Stands in for ``Database``: units of work whose statements wait for ``gate``."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.gate = asyncio.Event()
        self.fail = False
        self.connections = _Connections()

    @contextlib.asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[_Unit]:
        if self.fail:
            raise ConnectionRefusedError("database down")
        yield _Unit(_Connection(self.sent, self.gate))


async def test_commits_while_a_notification_is_in_flight_share_the_next_one() -> None:
    database = _Database()
    notices = CommitNotices(database)  # type: ignore[arg-type]  # a stand-in
    notify = notices.callback("dockyard_events")
    assert notices.callback("dockyard_events") is notify  # registered once per transaction
    notify()
    await asyncio.sleep(0)  # the first is in flight (blocked at the gate)
    for _ in range(10):
        notify()
    notices.notify("dockyard_outbox")
    database.gate.set()
    await notices.close()
    assert database.sent == [
        "NOTIFY dockyard_events",
        "NOTIFY dockyard_events; NOTIFY dockyard_outbox",
    ]


async def test_a_failed_notification_is_logged_once_and_never_raised(caplog: Any) -> None:
    database = _Database()
    database.fail = True
    notices = CommitNotices(database)  # type: ignore[arg-type]
    for _ in range(3):
        notices.notify("dockyard_events")
        await notices.close()
    assert caplog.text.count("could not NOTIFY dockyard_events") == 1
    database.fail = False
    database.gate.set()
    notices.notify("dockyard_events")
    await notices.close()
    assert database.sent == ["NOTIFY dockyard_events"]
