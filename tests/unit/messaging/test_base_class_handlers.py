"""A request with no handler of its own goes to the handler of its nearest handled base
(python-cq style), chosen when the app is built."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dockyard import App, module
from dockyard.exceptions import HandlerNotFoundError
from dockyard.messaging import (
    Command,
    CommandHandler,
    ISender,
    MessagingSettings,
    PipelineBehavior,
    StreamHandler,
    StreamRequest,
)


@dataclass(frozen=True, slots=True)
class Notify(Command[str]):
    text: str


@dataclass(frozen=True, slots=True)
class NotifyByMail(Notify):
    address: str = "a@b.c"


@dataclass(frozen=True, slots=True)
class NotifyUrgently(NotifyByMail):
    pass


@dataclass(frozen=True, slots=True)
class NotifyBySms(Notify):
    number: str = "555"


class NotifyHandler(CommandHandler[Notify, str]):
    async def handle(self, request: Notify, /) -> str:
        return f"{type(request).__name__}: {request.text}"


class SmsHandler(CommandHandler[NotifyBySms, str]):
    async def handle(self, request: NotifyBySms, /) -> str:
        return f"sms to {request.number}: {request.text}"


@dataclass(frozen=True, slots=True)
class Tail(StreamRequest[int]):
    count: int


@dataclass(frozen=True, slots=True)
class TailTwice(Tail):
    pass


class TailHandler(StreamHandler[Tail, int]):
    async def handle(self, request: Tail, /) -> AsyncIterator[int]:
        for item in range(request.count):
            yield item


@module(handlers=[NotifyHandler, SmsHandler, TailHandler])
class Notices: ...


async def test_a_subclass_goes_to_its_bases_handler() -> None:
    async with App.build(Notices) as app:
        assert await app.send(NotifyByMail("hi")) == "NotifyByMail: hi"
        assert await app.send(NotifyUrgently("now")) == "NotifyUrgently: now"
        async with app.scope() as scope:
            sender = await scope.get(ISender)
            for _ in range(2):  # the second send goes through the scope's cached handler
                assert await sender.send(NotifyByMail("x")) == "NotifyByMail: x"


async def test_the_most_specific_handled_type_wins() -> None:
    async with App.build(Notices) as app:
        assert await app.send(NotifyBySms("hi")) == "sms to 555: hi"
        assert await app.send(Notify("hi")) == "Notify: hi"


async def test_a_subclass_defined_after_the_build_is_found_too() -> None:
    async with App.build(Notices) as app:

        @dataclass(frozen=True, slots=True)
        class NotifyLater(NotifyBySms):
            pass

        assert await app.send(NotifyLater("late")) == "sms to 555: late"
        assert await app.send(NotifyLater("again")) == "sms to 555: again"


async def test_a_stream_subclass_goes_to_its_bases_stream_handler() -> None:
    async with App.build(Notices) as app, app.scope() as scope:
        sender = await scope.get(ISender)
        assert [item async for item in sender.stream(TailTwice(2))] == [0, 1]
        with pytest.raises(HandlerNotFoundError):
            await sender.send(TailTwice(2))


async def test_behaviors_are_chosen_for_the_subclass() -> None:
    seen: list[str] = []

    class Record(PipelineBehavior[NotifyByMail, Any]):
        async def handle(self, message: Any, call_next: Callable[[], Awaitable[Any]], /) -> Any:
            seen.append(type(message).__name__)
            return await call_next()

    settings = MessagingSettings(behaviors=[Record()])
    async with App.build(Notices, messaging=settings) as app:
        await app.send(Notify("a"))
        await app.send(NotifyByMail("b"))
        await app.send(NotifyUrgently("c"))
    assert seen == ["NotifyByMail", "NotifyUrgently"]


async def test_an_unhandled_request_still_fails_with_not_found() -> None:
    @dataclass(frozen=True, slots=True)
    class Orphan(Command[None]):
        pass

    async with App.build(Notices) as app:
        with pytest.raises(HandlerNotFoundError):
            await app.send(Orphan())
