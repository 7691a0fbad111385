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


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Transaction:
    """A unit of work as ``notify_inside`` sees it: its commit and rollback callbacks."""

    def __init__(self) -> None:
        self.on_commit: list[Any] = []
        self.on_rollback: list[Any] = []

    def after_commit(self, callback: Any) -> None:
        self.on_commit.append(callback)

    def after_rollback(self, callback: Any) -> None:
        self.on_rollback.append(callback)

    def commit(self) -> None:
        for callback in self.on_commit:
            callback()

    def rollback(self) -> None:
        for callback in self.on_rollback:
            callback()


def _inside(notices: CommitNotices, transaction: _Transaction) -> bool:
    return notices.notify_inside(transaction, "dockyard_events")  # type: ignore[arg-type]


async def _drain(notices: CommitNotices) -> None:
    """Let scheduled trailing notifications fire and the sender finish."""
    for _ in range(50):
        await asyncio.sleep(0.005)
        if not notices._trailing and (notices._sender is None or notices._sender.done()):
            return


async def test_commits_within_the_window_share_one_trailing_notify() -> None:
    """A sequential writer: the first transaction notifies inside itself; those that commit
    within the window after it do not, and one NOTIFY after the window covers them all."""
    database = _Database()
    database.gate.set()
    clock = _Clock()
    notices = CommitNotices(database, clock=clock)  # type: ignore[arg-type]
    first = _Transaction()
    assert _inside(notices, first) is True
    first.commit()  # its NOTIFY went with the commit
    for _ in range(10):
        clock.now += 0.0005
        later = _Transaction()
        assert _inside(notices, later) is False
        later.commit()
    assert database.sent == []  # not yet: at the end of the window
    await _drain(notices)
    assert database.sent == ["NOTIFY dockyard_events"]
    clock.now += 1.0  # a quiet while: the next one notifies inside itself again
    quiet = _Transaction()
    assert _inside(notices, quiet) is True
    quiet.commit()
    await notices.close()
    assert database.sent == ["NOTIFY dockyard_events"]


async def test_a_rollback_is_not_a_notification_and_a_close_sends_what_is_scheduled() -> None:
    database = _Database()
    database.gate.set()
    clock = _Clock()
    notices = CommitNotices(database, clock=clock)  # type: ignore[arg-type]
    rolled = _Transaction()
    assert _inside(notices, rolled) is True
    rolled.rollback()
    again = _Transaction()
    assert _inside(notices, again) is True  # nothing went out
    again.commit()
    clock.now += 0.001
    within = _Transaction()
    assert _inside(notices, within) is False
    within.commit()
    notices.callback("dockyard_outbox")()  # a channel with no notification yet: at once
    await notices.close()  # the trailing one is due now, not at the end of the window
    statements = [n for sent in database.sent for n in sent.split("; ")]
    assert sorted(statements) == ["NOTIFY dockyard_events", "NOTIFY dockyard_outbox"]
    assert not notices._trailing
