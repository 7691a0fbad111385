"""send: one handler, new scope or the current one, module visibility, not-found errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dockyard import App, module, scoped
from dockyard.exceptions import HandlerNotFoundError
from dockyard.messaging import (
    Command,
    CommandHandler,
    IMessageBus,
    IPublisher,
    ISender,
    Query,
    QueryHandler,
    StreamHandler,
    StreamRequest,
)


class Ledger:
    """A scoped dependency: one per scope."""

    def __init__(self) -> None:
        self.entries: list[int] = []


@dataclass(frozen=True, slots=True, kw_only=True)
class Deposit(Command[int]):
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Balance(Query[int]):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class DepositTwice(Command[list[int]]):
    amount: int


class DepositHandler(CommandHandler[Deposit, int]):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def handle(self, request: Deposit, /) -> int:
        self.ledger.entries.append(request.amount)
        return sum(self.ledger.entries)


class BalanceHandler(QueryHandler[Balance, int]):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def handle(self, request: Balance, /) -> int:
        return sum(self.ledger.entries)


class DepositTwiceHandler(CommandHandler[DepositTwice, list[int]]):
    """Sends from inside a handler: the injected sender reuses this scope."""

    def __init__(self, sender: ISender, ledger: Ledger) -> None:
        self.sender = sender
        self.ledger = ledger

    async def handle(self, request: DepositTwice, /) -> list[int]:
        await self.sender.send(Deposit(amount=request.amount))
        await self.sender.send(Deposit(amount=request.amount))
        return self.ledger.entries


@dataclass(frozen=True, slots=True, kw_only=True)
class Countdown(StreamRequest[int]):
    start: int


class CountdownHandler(StreamHandler[Countdown, int]):
    async def handle(self, request: Countdown, /):  # type: ignore[no-untyped-def]
        for i in range(request.start, 0, -1):
            yield i


@module(
    providers=[scoped(Ledger)],
    handlers=[DepositHandler, BalanceHandler, DepositTwiceHandler, CountdownHandler],
)
class Bank: ...


async def test_app_send_opens_a_scope_per_call() -> None:
    async with App.build(Bank) as app:
        assert await app.send(Deposit(amount=5)) == 5
        assert await app.send(Deposit(amount=7)) == 7  # a fresh Ledger: a new scope
        assert await app.send(Balance()) == 0


async def test_sender_in_an_open_scope_reuses_it() -> None:
    async with App.build(Bank) as app, app.scope() as scope:
        sender = await scope.get(ISender)
        assert await sender.send(Deposit(amount=5)) == 5
        assert await sender.send(Deposit(amount=7)) == 12
        assert await sender.send(Balance()) == 12
        assert await scope.get(IMessageBus) is sender
        assert await scope.get(IPublisher) is sender


async def test_send_from_a_handler_uses_the_handlers_scope() -> None:
    async with App.build(Bank) as app:
        assert await app.send(DepositTwice(amount=3)) == [3, 3]


async def test_handler_error_propagates_and_scope_stays_usable() -> None:
    @dataclass(frozen=True, slots=True)
    class Fail(Command[None]):
        pass

    class FailHandler(CommandHandler[Fail, None]):
        async def handle(self, request: Fail, /) -> None:
            raise ValueError("boom")

    @module(handlers=[FailHandler], imports=[Bank])
    class Root: ...

    async with App.build(Root) as app, app.scope() as scope:
        sender = await scope.get(ISender)
        for _ in range(2):  # the second call goes through the scope's cached handler
            with pytest.raises(ValueError, match="boom"):
                await sender.send(Fail())


class Rates:
    def __init__(self) -> None:
        self.rate = 2


@dataclass(frozen=True, slots=True)
class Convert(Query[int]):
    amount: int


class ConvertHandler(QueryHandler[Convert, int]):
    def __init__(self, rates: Rates) -> None:
        self.rates = rates

    async def handle(self, request: Convert, /) -> int:
        return request.amount * self.rates.rate


async def test_handler_resolves_dependencies_in_its_own_module() -> None:
    @module(providers=[scoped(Rates)], exports=[Rates])
    class RatesModule: ...

    @module(imports=[RatesModule], handlers=[ConvertHandler])
    class Exchange: ...

    @module(imports=[Exchange])
    class Root: ...  # sees neither Rates nor the handler, yet can send

    async with App.build(Root) as app:
        assert await app.send(Convert(3)) == 6
        async with app.scope() as scope:
            assert await (await scope.get(ISender)).send(Convert(4)) == 8


async def test_unknown_request_suggests_close_names() -> None:
    @dataclass(frozen=True, slots=True)
    class Deposits(Command[None]):
        pass

    async with App.build(Bank) as app:
        with pytest.raises(HandlerNotFoundError) as caught:
            await app.send(Deposits())
    assert str(caught.value) == (
        "No handler for `Deposits` is registered. Did you mean `Deposit` or `DepositTwice`? "
        "Hint: add a `RequestHandler[Deposits, ...]` subclass to some module's "
        "`handlers=[...]`."
    )
    assert isinstance(caught.value, LookupError)
    assert caught.value.message_type is Deposits


async def test_unknown_request_without_close_names() -> None:
    @dataclass(frozen=True, slots=True)
    class Zzz(Command[None]):
        pass

    async with App.build(Bank) as app, app.scope() as scope:
        with pytest.raises(HandlerNotFoundError) as caught:
            await (await scope.get(ISender)).send(Zzz())
    assert str(caught.value) == (
        "No handler for `Zzz` is registered. "
        "Hint: add a `RequestHandler[Zzz, ...]` subclass to some module's `handlers=[...]`."
    )


@dataclass(frozen=True, slots=True)
class Welcome(Command[None]):
    user: str


class SendWelcome(CommandHandler[Welcome, None]):
    async def handle(self, request: Welcome, /) -> None: ...


@module(handlers=[SendWelcome])
class NotificationsModule: ...


async def test_a_handler_in_a_module_the_app_does_not_import_is_named() -> None:
    # waku's quick-start, ported literally: the module is defined, the root never imports it.
    async with App.build(Bank) as app:
        with pytest.raises(HandlerNotFoundError) as caught:
            await app.send(Welcome("ada"))
    assert str(caught.value) == (
        "No handler for `Welcome` is registered. `SendWelcome` in module `NotificationsModule` "
        f"({__name__}) handles it, but this app does not import that module: a module's "
        "handlers are registered only when the root module imports it (directly or through "
        "another module). Hint: add `NotificationsModule` to the root module's `imports=[...]`."
    )

    @module(imports=[NotificationsModule])
    class Root: ...

    async with App.build(Root) as app:
        await app.send(Welcome("ada"))  # imported: handled


async def test_send_of_a_stream_request_says_to_stream_it() -> None:
    async with App.build(Bank) as app:
        with pytest.raises(HandlerNotFoundError) as caught:
            await app.send(Countdown(start=2))  # type: ignore[arg-type]
        assert str(caught.value) == (
            "`send` got `Countdown`, which is handled by a stream handler. "
            "Hint: use `stream(...)` for `Countdown`."
        )
        with pytest.raises(HandlerNotFoundError) as caught:
            async for _ in app.stream(Deposit(amount=1)):  # type: ignore[arg-type]
                pass
        assert str(caught.value) == (
            "`stream` got `Deposit`, which is handled by a request handler. "
            "Hint: use `send(...)` for `Deposit`."
        )


async def test_stream_request_without_handler() -> None:
    @dataclass(frozen=True, slots=True)
    class Countdwn(StreamRequest[int]):
        pass

    async with App.build(Bank) as app:
        with pytest.raises(HandlerNotFoundError) as caught:
            async for _ in app.stream(Countdwn()):
                pass
    assert str(caught.value) == (
        "No handler for `Countdwn` is registered. Did you mean `Countdown`? "
        "Hint: add a `StreamHandler[Countdwn, ...]` subclass to some module's `handlers=[...]`."
    )


async def test_stream_through_app_and_scope() -> None:
    async with App.build(Bank) as app:
        assert [i async for i in app.stream(Countdown(start=3))] == [3, 2, 1]
        async with app.scope() as scope:
            sender = await scope.get(ISender)
            assert [i async for i in sender.stream(Countdown(start=2))] == [2, 1]


async def test_stream_closed_early_closes_the_handler() -> None:
    closed: list[bool] = []

    @dataclass(frozen=True, slots=True)
    class Forever(StreamRequest[int]):
        pass

    class ForeverHandler(StreamHandler[Forever, int]):
        async def handle(self, request: Forever, /):  # type: ignore[no-untyped-def]
            try:
                i = 0
                while True:
                    i += 1
                    yield i
            finally:
                closed.append(True)

    @module(handlers=[ForeverHandler])
    class Root: ...

    async with App.build(Root) as app:
        stream = app.stream(Forever())
        assert [await anext(stream), await anext(stream)] == [1, 2]
        await stream.aclose()  # type: ignore[attr-defined]
    assert closed == [True]


async def test_shortcuts_need_a_started_app() -> None:
    app = App.build(Bank)
    with pytest.raises(Exception, match=r"^Cannot send a message before the app has started"):
        await app.send(Balance())
    with pytest.raises(Exception, match=r"^Cannot publish an event before the app has started"):
        await app.publish(object())
    with pytest.raises(Exception, match=r"^Cannot stream a request before the app has started"):
        await anext(app.stream(Countdown(start=1)))
