"""Handlers that collect events in ``events`` (python-cqrs style): published after ``handle``
returns, in the same scope and inside the behaviors; never on failure, never twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dockyard import App, module, scoped
from dockyard.messaging import (
    ChainHandler,
    Command,
    CommandHandler,
    Event,
    EventHandler,
    IPublisher,
    ISender,
    MessagingSettings,
    PipelineBehavior,
    StreamHandler,
    StreamRequest,
)
from otel_sdk import otel_sdk


class Journal:
    """Scoped: what this scope's handlers and behaviors did, in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []


@dataclass(frozen=True, slots=True)
class Joined(Event):
    user: str


@dataclass(frozen=True, slots=True)
class Join(Command[str]):
    user: str
    fail: bool = False


class JoinHandler(CommandHandler[Join, str]):
    """As ported from python-cqrs: a private list behind an ``events`` property."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._events: list[Event] = []

    @property
    def events(self) -> list[Event]:
        return self._events

    async def handle(self, request: Join, /) -> str:
        self._events.append(Joined(request.user))
        self.journal.lines.append(f"join {request.user}")
        if request.fail:
            raise RuntimeError("no room")
        return request.user


class OnJoined(EventHandler[Joined]):
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def handle(self, event: Joined, /) -> None:
        self.journal.lines.append(f"joined {event.user}")


@dataclass(frozen=True, slots=True)
class Pay(Command[str]):
    method: str


@dataclass(frozen=True, slots=True)
class Paid(Event):
    by: str


class CardPayment(ChainHandler[Pay, str]):
    events: list[Event]  # set per instance: the annotation says it collects

    def __init__(self) -> None:
        self.events = []

    async def handle(self, request: Pay, call_next: Callable[[], Awaitable[str]], /) -> str:
        if request.method != "card":
            return await call_next()
        self.events.append(Paid("card"))
        return "card"


class CashPayment(ChainHandler[Pay, str]):
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def handle(self, request: Pay, call_next: Callable[[], Awaitable[str]], /) -> str:
        self.events.append(Paid("cash"))
        return "cash"


class OnPaid(EventHandler[Paid]):
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def handle(self, event: Paid, /) -> None:
        self.journal.lines.append(f"paid by {event.by}")


@dataclass(frozen=True, slots=True)
class Process(StreamRequest[int]):
    count: int


@dataclass(frozen=True, slots=True)
class Processed(Event):
    item: int


class ProcessHandler(StreamHandler[Process, int]):
    """The python-cqrs streaming form: ``events`` returns a copy, ``clear_events`` empties."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    @property
    def events(self) -> list[Event]:
        return self._events.copy()

    def clear_events(self) -> None:
        self._events.clear()

    async def handle(self, request: Process, /) -> AsyncIterator[int]:
        for item in range(request.count):
            self._events.append(Processed(item))
            yield item


class OnProcessed(EventHandler[Processed]):
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def handle(self, event: Processed, /) -> None:
        self.journal.lines.append(f"processed {event.item}")


class Around(PipelineBehavior[Command[Any], Any]):
    """Stands for a transaction: the events must be published before it ends."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def handle(self, message: Any, call_next: Callable[[], Awaitable[Any]], /) -> Any:
        self.journal.lines.append("begin")
        try:
            return await call_next()
        finally:
            self.journal.lines.append("end")


@module(
    providers=[scoped(Journal)],
    handlers=[
        JoinHandler,
        OnJoined,
        CardPayment,
        CashPayment,
        OnPaid,
        ProcessHandler,
        OnProcessed,
    ],
)
class Meetings: ...


async def test_collected_events_are_published_after_handle_in_the_same_scope() -> None:
    async with App.build(Meetings) as app, app.scope() as scope:
        journal = await scope.get(Journal)
        sender = await scope.get(ISender)
        assert await sender.send(Join("ann")) == "ann"
        assert journal.lines == ["join ann", "joined ann"]
        # same scope, same handler instance: the first event is not published again
        assert await sender.send(Join("bob")) == "bob"
        assert journal.lines == ["join ann", "joined ann", "join bob", "joined bob"]


async def test_a_failed_handle_publishes_nothing_and_forgets_its_events() -> None:
    async with App.build(Meetings) as app, app.scope() as scope:
        journal = await scope.get(Journal)
        sender = await scope.get(ISender)
        with pytest.raises(RuntimeError, match="no room"):
            await sender.send(Join("ann", fail=True))
        assert journal.lines == ["join ann"]
        await sender.send(Join("bob"))
        assert journal.lines == ["join ann", "join bob", "joined bob"]


async def test_events_are_published_inside_the_behaviors() -> None:
    settings = MessagingSettings(behaviors=[Around])
    async with App.build(Meetings, messaging=settings) as app, app.scope() as scope:
        journal = await scope.get(Journal)
        await (await scope.get(ISender)).send(Join("ann"))
        assert journal.lines == ["begin", "join ann", "joined ann", "end"]


async def test_app_send_publishes_collected_events_too() -> None:
    seen: list[str] = []

    class Record(PipelineBehavior[Command[Any], Any]):
        def __init__(self, journal: Journal) -> None:
            self.journal = journal

        async def handle(self, message: Any, call_next: Callable[[], Awaitable[Any]], /) -> Any:
            answer = await call_next()
            seen.extend(self.journal.lines)
            return answer

    async with App.build(Meetings, messaging=MessagingSettings(behaviors=[Record])) as app:
        assert await app.send(Join("ann")) == "ann"
    assert seen == ["join ann", "joined ann"]


async def test_each_chain_link_publishes_its_own_events() -> None:
    async with App.build(Meetings) as app, app.scope() as scope:
        journal = await scope.get(Journal)
        sender = await scope.get(ISender)
        assert await sender.send(Pay("card")) == "card"
        assert await sender.send(Pay("cash")) == "cash"
        assert journal.lines == ["paid by card", "paid by cash"]


async def test_a_stream_publishes_after_each_item() -> None:
    async with App.build(Meetings) as app, app.scope() as scope:
        journal = await scope.get(Journal)
        sender = await scope.get(ISender)
        seen = [f"got {item}: {journal.lines[-1]}" async for item in sender.stream(Process(3))]
        assert seen == ["got 0: processed 0", "got 1: processed 1", "got 2: processed 2"]
        assert journal.lines == ["processed 0", "processed 1", "processed 2"]


async def test_traced_plans_publish_collected_events_too() -> None:
    for otel in otel_sdk():
        async with (
            App.build(Meetings, telemetry=otel.telemetry) as app,
            app.scope() as scope,
        ):
            journal = await scope.get(Journal)
            sender = await scope.get(ISender)
            await sender.send(Join("ann"))
            await sender.send(Pay("cash"))
            assert [item async for item in sender.stream(Process(1))] == [0]
            assert journal.lines == ["join ann", "joined ann", "paid by cash", "processed 0"]


async def test_an_injected_publisher_named_events_is_not_a_list_of_events() -> None:
    @dataclass(frozen=True, slots=True)
    class Leave(Command[None]):
        user: str

    @dataclass(frozen=True, slots=True)
    class Left(Event):
        user: str

    left: list[str] = []

    class LeaveHandler(CommandHandler[Leave, None]):
        def __init__(self, events: IPublisher) -> None:
            self.events = events

        async def handle(self, request: Leave, /) -> None:
            await self.events.publish(Left(request.user))

    class OnLeft(EventHandler[Left]):
        async def handle(self, event: Left, /) -> None:
            left.append(event.user)

    @module(handlers=[LeaveHandler, OnLeft])
    class Root: ...

    async with App.build(Root) as app:
        await app.send(Leave("ann"))
    assert left == ["ann"]
