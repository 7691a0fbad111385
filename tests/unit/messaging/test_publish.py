"""publish: zero or more handlers, registration and MRO order, sequential or concurrent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from dockyard import App, module, scoped
from dockyard.messaging import Event, EventDelivery, EventHandler, IPublisher, MessagingSettings


class Journal:
    """Scoped: what the handlers of one scope saw."""

    def __init__(self) -> None:
        self.lines: list[str] = []


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountEvent(Event):
    account: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Opened(AccountEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Unheard(Event):
    pass


SEEN: list[str] = []


class AuditAll(EventHandler[AccountEvent]):
    async def handle(self, event: AccountEvent, /) -> None:
        SEEN.append(f"audit {type(event).__name__}")


class Welcome(EventHandler[Opened]):
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def handle(self, event: Opened, /) -> None:
        self.journal.lines.append("welcome")
        SEEN.append(f"welcome {event.account}")


class Index(EventHandler[Opened]):
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    async def handle(self, event: Opened, /) -> None:
        SEEN.append(f"index {event.account} after {self.journal.lines}")


@module(providers=[scoped(Journal)], exports=[Journal], handlers=[AuditAll, Welcome])
class Accounts: ...


@module(imports=[Accounts], handlers=[Index])
class Search: ...


@pytest.fixture(autouse=True)
def _clear() -> None:
    SEEN.clear()


async def test_own_handlers_in_registration_order_then_bases() -> None:
    # Opened's own handlers (module init order: Accounts, then Search), then AccountEvent's.
    async with App.build(Search) as app:
        await app.publish(Opened(account="a1"))
    assert SEEN == ["welcome a1", "index a1 after ['welcome']", "audit Opened"]


async def test_base_event_reaches_only_base_handlers() -> None:
    async with App.build(Search) as app:
        await app.publish(AccountEvent(account="a1"))
    assert SEEN == ["audit AccountEvent"]


async def test_subclass_nobody_registered_is_planned_on_first_publish() -> None:
    @dataclass(frozen=True, slots=True, kw_only=True)
    class Closed(AccountEvent):
        pass

    async with App.build(Search) as app, app.scope() as scope:
        publisher = await scope.get(IPublisher)
        await publisher.publish(Closed(account="a2"))
        await publisher.publish(Closed(account="a3"))
    assert SEEN == ["audit Closed", "audit Closed"]


async def test_no_handler_is_a_no_op() -> None:
    async with App.build(Search) as app:
        await app.publish(Unheard())
        async with app.scope() as scope:
            await (await scope.get(IPublisher)).publish(Unheard())
    assert SEEN == []


class Broken(EventHandler[Opened]):
    async def handle(self, event: Opened, /) -> None:
        SEEN.append("broken")
        raise RuntimeError(f"cannot index {event.account}")


class AlsoBroken(EventHandler[Opened]):
    async def handle(self, event: Opened, /) -> None:
        SEEN.append("also broken")
        raise KeyError(event.account)


async def test_sequential_error_stops_the_rest_and_propagates() -> None:
    @module(imports=[Accounts], handlers=[Broken, Index])
    class Root: ...

    async with App.build(Root) as app:
        with pytest.raises(RuntimeError, match="cannot index a1"):
            await app.publish(Opened(account="a1"))
    assert SEEN == ["welcome a1", "broken"]


async def test_concurrent_runs_every_handler_and_gathers_errors() -> None:
    @module(imports=[Accounts], handlers=[Broken, AlsoBroken])
    class Root: ...

    settings = MessagingSettings(event_delivery=EventDelivery(concurrent=True))
    async with App.build(Root, messaging=settings) as app:
        with pytest.raises(ExceptionGroup) as caught:
            await app.publish(Opened(account="a1"))
    assert str(caught.value) == "2 of 4 handlers of `Opened` failed (2 sub-exceptions)"
    assert [type(e) for e in caught.value.exceptions] == [RuntimeError, KeyError]
    assert sorted(SEEN) == ["also broken", "audit Opened", "broken", "welcome a1"]


async def test_concurrency_limit_per_event_type() -> None:
    running: list[int] = []
    peak: list[int] = []

    @dataclass(frozen=True, slots=True)
    class Tick(Event):
        pass

    def make(i: int) -> type:
        class Slow(EventHandler[Tick]):
            async def handle(self, event: Tick, /) -> None:
                running.append(i)
                peak.append(len(running))
                await asyncio.sleep(0.001)
                running.remove(i)

        return Slow

    @module(handlers=[make(i) for i in range(6)])
    class Root: ...

    async def peak_with(delivery: EventDelivery) -> int:
        peak.clear()
        settings = MessagingSettings(event_delivery_for={Tick: delivery})
        async with App.build(Root, messaging=settings) as app:
            await app.publish(Tick())
        assert len(peak) == 6
        return max(peak)

    assert await peak_with(EventDelivery()) == 1
    assert await peak_with(EventDelivery(concurrent=True, limit=2)) == 2
    assert await peak_with(EventDelivery(concurrent=True)) == 6


def test_delivery_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        EventDelivery(concurrent=True, limit=0)
    with pytest.raises(ValueError, match="applies to concurrent delivery only"):
        EventDelivery(limit=3)


async def test_concurrent_with_one_handler_runs_inline() -> None:
    @dataclass(frozen=True, slots=True)
    class Ping(Event):
        pass

    tasks: list[asyncio.Task[object] | None] = []

    class OnPing(EventHandler[Ping]):
        async def handle(self, event: Ping, /) -> None:
            tasks.append(asyncio.current_task())

    @module(handlers=[OnPing])
    class Root: ...

    settings = MessagingSettings(event_delivery=EventDelivery(concurrent=True))
    async with App.build(Root, messaging=settings) as app, app.scope() as scope:
        await (await scope.get(IPublisher)).publish(Ping())
        assert tasks == [asyncio.current_task()]  # no task was created for it
