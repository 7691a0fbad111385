"""``@handler`` functions: the message first, the other parameters injected, registered and
checked like handler classes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pytest

from dockyard import App, module, scoped
from dockyard.exceptions import ChainExhaustedError, ModuleConfigurationError
from dockyard.messaging import (
    ChainHandler,
    Command,
    Event,
    IPublisher,
    ISender,
    Query,
    StreamRequest,
    handler,
)


class Ledger:
    def __init__(self) -> None:
        self.entries: list[int] = []


@dataclass(frozen=True, slots=True)
class Deposit(Command[int]):
    amount: int


@dataclass(frozen=True, slots=True)
class Balance(Query[int]):
    pass


@dataclass(frozen=True, slots=True)
class Deposited(Event):
    amount: int


@dataclass(frozen=True, slots=True)
class History(StreamRequest[int]):
    pass


SEEN: list[int] = []


@handler
async def deposit(command: Deposit, ledger: Ledger, events: IPublisher) -> int:
    ledger.entries.append(command.amount)
    await events.publish(Deposited(command.amount))
    return sum(ledger.entries)


@handler
async def balance(query: Balance, ledger: Ledger) -> int:
    return sum(ledger.entries)


@handler
async def on_deposited(event: Deposited) -> None:
    SEEN.append(event.amount)


@handler
async def history(request: History, ledger: Ledger) -> AsyncIterator[int]:
    for entry in ledger.entries:
        yield entry


@module(providers=[scoped(Ledger)], handlers=[deposit, balance, on_deposited, history])
class Bank: ...


@pytest.fixture(autouse=True)
def _clear() -> None:
    SEEN.clear()


async def test_function_handlers_answer_publish_and_stream_with_injected_parameters() -> None:
    async with App.build(Bank) as app, app.scope() as scope:
        sender = await scope.get(ISender)
        assert await sender.send(Deposit(5)) == 5
        assert await sender.send(Deposit(7)) == 12
        assert await sender.send(Balance()) == 12
        assert [entry async for entry in sender.stream(History())] == [5, 7]
    assert SEEN == [5, 7]
    info = app.messages.get(Deposit)
    assert info is not None
    assert [(h.handler.__qualname__, h.module) for h in info.handlers] == [("deposit", "Bank")]


async def test_a_function_handler_is_still_a_plain_function() -> None:
    ledger = Ledger()
    assert await balance(Balance(), ledger) == 0


class Mailer:
    pass


@dataclass(frozen=True, slots=True)
class Notify(Command[None]):
    pass


@handler
async def notify(command: Notify, mailer: Mailer) -> None:
    pass


def test_an_unresolvable_parameter_is_a_build_error_naming_module_type_and_fix() -> None:
    @module(handlers=[notify])
    class Notices: ...

    with pytest.raises(ModuleConfigurationError) as caught:
        App.build(Notices)
    text = str(caught.value)
    assert "Module `Notices` needs `Mailer`" in text
    assert "(for `notify`, parameter `mailer`)" in text
    assert "Hint: add a provider for `Mailer` to `Notices`" in text


def test_a_parameter_from_a_module_that_does_not_export_it_is_a_build_error() -> None:
    @module(providers=[scoped(Mailer)])
    class Mail: ...

    @module(imports=[Mail], handlers=[notify])
    class Notices: ...

    with pytest.raises(ModuleConfigurationError, match="Mailer"):
        App.build(Notices)


def test_handler_rejects_what_it_cannot_register() -> None:
    def plain(command: Notify) -> None: ...

    with pytest.raises(TypeError, match="needs an `async def`"):
        handler(plain)

    async def untyped(command, mailer: Mailer) -> None: ...  # type: ignore[no-untyped-def]

    with pytest.raises(TypeError, match="`command` have no annotation"):
        handler(untyped)

    async def not_a_message(text: str) -> None: ...

    with pytest.raises(TypeError, match="typed `str`, not a `Command`, `Query` or `Event`"):
        handler(not_a_message)


P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Notice(Event, Generic[P]):
    payload: P


@dataclass(frozen=True, slots=True)
class Left:
    user: str


@handler
async def on_left(event: Notice[Left]) -> None:
    SEEN.append(len(event.payload.user))


async def test_a_function_handler_of_a_parametrized_event_gets_only_that_payload() -> None:
    @module(handlers=[on_left])
    class Rooms: ...

    async with App.build(Rooms) as app:
        await app.publish(Notice(Left("ada")))
        await app.publish(Notice("not a Left"))
    assert SEEN == [3]


# -- chain links -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pay(Command[str]):
    method: str


class Gateway:
    def charge(self, request: Pay) -> str:
        return f"card:{request.method}"


@handler
async def by_card(request: Pay, call_next: Callable[[], Awaitable[str]], gateway: Gateway) -> str:
    if request.method != "card":
        return await call_next()
    return gateway.charge(request)


class ByInvoice(ChainHandler[Pay, str]):
    async def handle(self, request: Pay, call_next: Callable[[], Awaitable[str]], /) -> str:
        if request.method != "invoice":
            return await call_next()
        return "invoice"


@handler
async def by_cash(request: Pay, call_next: Callable[[], Coroutine[Any, Any, str]]) -> str:
    return "cash" if request.method == "cash" else await call_next()


async def test_function_links_join_a_chain_with_class_links_in_registration_order() -> None:
    @module(providers=[scoped(Gateway)], handlers=[by_card, ByInvoice, by_cash])
    class Payments: ...

    async with App.build(Payments) as app:
        assert await app.send(Pay("card")) == "card:card"
        assert await app.send(Pay("invoice")) == "invoice"
        assert await app.send(Pay("cash")) == "cash"
        with pytest.raises(ChainExhaustedError) as caught:
            await app.send(Pay("iou"))
    assert "(`by_card` → `ByInvoice` → `by_cash`)" in str(caught.value)
    info = app.messages.get(Pay)
    assert info is not None
    assert info.kind == "chain"
    assert [h.handler.__qualname__ for h in info.handlers] == ["by_card", "ByInvoice", "by_cash"]


async def test_a_function_link_is_still_a_plain_function() -> None:
    async def passed() -> str:
        return "next"

    assert await by_card(Pay("iou"), passed, Gateway()) == "next"


def test_a_function_link_parameter_nobody_provides_is_a_build_error_naming_it() -> None:
    @module(handlers=[by_card, by_cash])
    class Payments: ...

    with pytest.raises(ModuleConfigurationError) as caught:
        App.build(Payments)
    text = str(caught.value)
    assert "Module `Payments` needs `Gateway`" in text
    assert "(for `by_card`, parameter `gateway`)" in text


def test_a_function_link_parameter_not_exported_to_it_is_a_build_error() -> None:
    @module(providers=[scoped(Gateway)])
    class Cards: ...

    @module(imports=[Cards], handlers=[by_card])
    class Payments: ...

    with pytest.raises(ModuleConfigurationError, match="Gateway"):
        App.build(Payments)


def test_a_function_link_and_a_plain_handler_for_one_request_are_a_build_error() -> None:
    @handler
    async def pay(request: Pay) -> str:
        return "plain"

    @module(providers=[scoped(Gateway)], handlers=[by_card, pay])
    class Payments: ...

    with pytest.raises(ModuleConfigurationError, match="Request `Pay` has 2 handlers"):
        App.build(Payments)


def test_a_function_link_must_answer_a_request() -> None:
    async def on_event(event: Deposited, call_next: Callable[[], Awaitable[None]]) -> None: ...

    with pytest.raises(TypeError) as caught:
        handler(on_event)
    assert str(caught.value) == (
        "@handler `test_a_function_link_must_answer_a_request.<locals>.on_event` takes a "
        "`call_next` (its second parameter is typed `Callable[[], Awaitable[...]]`), which "
        "makes it a link of a chain of responsibility, but its message is typed `Deposited`: "
        "a chain answers a `Command` or a `Query`. Hint: type the first parameter with the "
        "request the chain answers, or drop the `call_next` parameter"
    )

    async def streamed(
        request: History, call_next: Callable[[], Awaitable[int]]
    ) -> AsyncIterator[int]:
        yield await call_next()

    with pytest.raises(TypeError, match="its message is an `async def` that yields"):
        handler(streamed)


@handler
async def uses_factory(request: Pay, make: Callable[[int], Awaitable[str]]) -> str:
    return await make(len(request.method))


def test_a_callable_that_is_not_call_next_is_injected_as_usual() -> None:
    @module(handlers=[uses_factory])
    class Payments: ...

    with pytest.raises(ModuleConfigurationError, match="parameter `make`"):
        App.build(Payments)  # a plain handler whose `make` nobody provides
