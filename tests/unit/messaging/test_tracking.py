"""Context tracking is decided per message type when the app is built.

An envelope costs every message it is made for (docs/design/dispatch.md), so a type is tracked
only when something on its way — its handlers, what they depend on, its behaviors — can read
the envelope (``MessageContext``, ``Outbox``), send or publish, or hides what it does (a
container, a dependency typed ``Any``). ``app.messages`` says which types are tracked.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from dishka import AsyncContainer

from dockyard import App, module, scoped
from dockyard.exceptions import MessageContextError
from dockyard.messaging import (
    Command,
    CommandHandler,
    Event,
    EventHandler,
    IPublisher,
    LoggingBehavior,
    MessageContext,
    MessagingSettings,
    PipelineBehavior,
    StreamHandler,
    StreamRequest,
)
from dockyard.modules import ModuleLike
from dockyard.outbox import OutboxMessage, OutboxModule, route
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.transport import CAUSATION_ID, CORRELATION_ID
from dockyard.transport.memory import InMemoryTransport


@dataclass(frozen=True, slots=True)
class Deposit(Command[None]):
    account: str
    amount: int


@dataclass(frozen=True, slots=True)
class Deposited(Event):
    account: str
    amount: int


@dataclass(frozen=True, slots=True)
class Tally(Command[int]):
    pass


class Counter:
    def __init__(self) -> None:
        self.value = 0


class TallyHandler(CommandHandler[Tally, int]):
    """Touches neither the outbox nor the bus: nothing it does can carry its ids further."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    async def handle(self, request: Tally, /) -> int:
        self.counter.value += 1
        return self.counter.value


class Accounts:
    """A repository that publishes what happened: its users are tracked through it."""

    def __init__(self, publisher: IPublisher) -> None:
        self.publisher = publisher

    async def deposit(self, account: str, amount: int) -> None:
        await self.publisher.publish(Deposited(account, amount))


class DepositHandler(CommandHandler[Deposit, None]):
    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts

    async def handle(self, request: Deposit, /) -> None:
        await self.accounts.deposit(request.account, request.amount)


def _routed(backend: InMemoryOutboxBackend) -> ModuleLike:
    return OutboxModule.register(
        transport=InMemoryTransport(),
        backend=backend,
        routes=[route(Deposited).to("deposits")],
    )


def _shop(*handlers: type, providers: tuple[Any, ...] = (), **settings: Any) -> App:
    @module(
        providers=[scoped(Counter), scoped(Accounts), *providers],
        handlers=list(handlers),
        imports=[_routed(InMemoryOutboxBackend())],
    )
    class Shop: ...

    return App.build(Shop, messaging=MessagingSettings(**settings))


def _tracked(app: App, message_type: type) -> bool:
    info = app.messages.get(message_type)
    assert info is not None
    return info.tracked


async def _pending(backend: InMemoryOutboxBackend) -> list[OutboxMessage]:
    async with backend.store.claim(10, time.time() + 60) as batch:
        return list(batch.messages)


async def test_a_command_that_reaches_nothing_is_not_tracked_in_an_app_that_routes() -> None:
    app = _shop(TallyHandler, DepositHandler)
    assert _tracked(app, Tally) is False
    assert _tracked(app, Deposited) is True  # the route writes to the outbox
    assert _tracked(app, Deposit) is True  # through Accounts, it publishes

    # no envelope while it is handled: a context read from the side finds none
    seen: list[object] = []

    class Peek(CommandHandler[Tally, int]):
        def __init__(self, counter: Counter) -> None:
            self.counter = counter

        async def handle(self, request: Tally, /) -> int:
            try:
                seen.append(context[0].message_id)
            except MessageContextError as exc:
                seen.append(exc)
            return 0

    context: list[MessageContext] = []
    for forced, found in ((None, MessageContextError), (True, str)):
        seen.clear()
        peeking = _shop(Peek, DepositHandler, track_context=forced)
        async with peeking:
            context[:] = [await peeking.get(MessageContext)]
            await peeking.send(Tally(), message_id="tally-1")
        assert len(seen) == 1
        assert isinstance(seen[0], found)
    assert seen == ["tally-1"]  # forced on, the same handler sees its envelope


async def test_a_handler_publishing_through_a_repository_passes_on_its_ids() -> None:
    backend = InMemoryOutboxBackend()

    @module(
        providers=[scoped(Accounts)],
        handlers=[DepositHandler],
        imports=[_routed(backend)],
    )
    class Bank: ...

    app = App.build(Bank)
    assert _tracked(app, Deposit) is True
    async with app:
        await app.send(Deposit("a-1", 5), message_id="cmd-1", correlation_id="conv-1")
    (written,) = await _pending(backend)
    assert written.destination == "deposits"
    assert written.headers[CAUSATION_ID] == "cmd-1"
    assert written.headers[CORRELATION_ID] == "conv-1"


class Opaque:
    pass


def make_opaque(thing: Any) -> Opaque:
    del thing
    return Opaque()


class NeedsOpaque(CommandHandler[Tally, int]):
    def __init__(self, opaque: Opaque) -> None:
        self.opaque = opaque

    async def handle(self, request: Tally, /) -> int:
        return 0


class NeedsContainer(CommandHandler[Deposit, None]):
    def __init__(self, container: AsyncContainer) -> None:
        self.container = container

    async def handle(self, request: Deposit, /) -> None:
        return None


def test_what_cannot_be_seen_through_is_tracked() -> None:
    app = _shop(
        NeedsOpaque,
        NeedsContainer,
        providers=(scoped(make_opaque), scoped(Any, lambda: None)),
    )
    assert _tracked(app, Tally) is True
    assert _tracked(app, Deposit) is True


def test_behaviors_on_the_way_count() -> None:
    class Stamp(PipelineBehavior[Tally, int]):
        def __init__(self, context: MessageContext) -> None:
            self.context = context

        async def handle(self, message: Tally, call_next: Callable[[], Awaitable[int]], /) -> int:
            return await call_next()

    plain = _shop(TallyHandler, behaviors=[LoggingBehavior()])
    assert _tracked(plain, Tally) is False  # a shared instance that holds nothing of the kind
    stamped = _shop(TallyHandler, message_behaviors={Tally: [Stamp]})
    assert _tracked(stamped, Tally) is True


async def test_events_and_streams_are_decided_per_type() -> None:
    @dataclass(frozen=True, slots=True)
    class BigDeposit(Deposited):
        pass

    @dataclass(frozen=True, slots=True)
    class Count(StreamRequest[int]):
        pass

    class Counting(StreamHandler[Count, int]):
        def __init__(self, counter: Counter) -> None:
            self.counter = counter

        async def handle(self, request: Count, /) -> AsyncIterator[int]:
            yield self.counter.value

    @dataclass(frozen=True, slots=True)
    class Noted(Event):
        pass

    class OnNoted(EventHandler[Noted]):
        def __init__(self, counter: Counter) -> None:
            self.counter = counter

        async def handle(self, event: Noted, /) -> None:
            self.counter.value += 1

    app = _shop(Counting, OnNoted)
    assert _tracked(app, Count) is False
    assert _tracked(app, Noted) is False
    # a subclass nobody routed is planned on first publish, with its base's route
    assert app._dispatcher.event_plan(BigDeposit).tracked is True
    async with app:
        assert [item async for item in app.stream(Count())] == [0]


def test_nothing_is_tracked_where_nothing_reads_the_envelope() -> None:
    @module(providers=[scoped(Counter), scoped(Accounts)], handlers=[DepositHandler])
    class Quiet: ...

    assert _tracked(App.build(Quiet), Deposit) is False  # it publishes, but nobody reads ids


@pytest.mark.parametrize("forced", [True, False])
def test_the_setting_wins_for_every_type(forced: bool) -> None:
    app = _shop(TallyHandler, DepositHandler, track_context=forced)
    assert {_tracked(app, t) for t in (Tally, Deposit, Deposited)} == {forced}
