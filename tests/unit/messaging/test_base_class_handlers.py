"""A request with no handler of its own goes to the handler of its nearest handled base
(python-cq style), chosen when the app is built."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dockyard import App, module
from dockyard.exceptions import (
    AmbiguousHandlerError,
    HandlerNotFoundError,
    ModuleConfigurationError,
)
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


# -- two handled bases, neither more specific: reported, never chosen by MRO order ---------


@dataclass(frozen=True)  # no slots: two bases with fields of their own
class Audit(Command[str]):
    text: str = ""


@dataclass(frozen=True)  # no slots: two bases with fields of their own
class Archive(Command[str]):
    text: str = ""


@dataclass(frozen=True)  # no slots: two bases with fields of their own
class AuditAndArchive(Audit, Archive):
    pass


@dataclass(frozen=True)  # no slots: two bases with fields of their own
class AuditAndArchiveLater(AuditAndArchive):
    pass


class AuditHandler(CommandHandler[Audit, str]):
    async def handle(self, request: Audit, /) -> str:
        return "audit"


class ArchiveHandler(CommandHandler[Archive, str]):
    async def handle(self, request: Archive, /) -> str:
        return "archive"


class BothHandler(CommandHandler[AuditAndArchive, str]):
    async def handle(self, request: AuditAndArchive, /) -> str:
        return "both"


def test_two_equally_specific_handled_bases_are_a_build_error_naming_request_handlers_fix() -> None:
    @module(handlers=[AuditHandler, ArchiveHandler])
    class Records: ...

    with pytest.raises(ModuleConfigurationError) as caught:
        App.build(Records)
    problems = caught.value.problems
    assert all(isinstance(p, AmbiguousHandlerError) for p in problems)
    by_type = {p.message_type: p for p in problems if isinstance(p, AmbiguousHandlerError)}
    assert set(by_type) == {AuditAndArchive, AuditAndArchiveLater}  # and its own subclass
    assert str(by_type[AuditAndArchive]) == (
        "Request `AuditAndArchive` has no handler of its own, and the handlers of its bases are "
        "equally specific for it: `Audit` by `AuditHandler` (module `Records`) and `Archive` by "
        "`ArchiveHandler` (module `Records`); neither base is a subclass of the other, so "
        "dockyard will not pick one by inheritance order. Hint: register a handler for "
        "`AuditAndArchive` itself (it may delegate to one of them)."
    )


async def test_a_handler_for_the_concrete_type_resolves_the_tie() -> None:
    @module(handlers=[AuditHandler, ArchiveHandler, BothHandler])
    class Records: ...

    async with App.build(Records) as app:
        assert await app.send(AuditAndArchive()) == "both"
        assert await app.send(AuditAndArchiveLater()) == "both"  # the nearest, not a tie
        assert await app.send(Audit()) == "audit"


def test_unrelated_handled_bases_tie_whatever_their_depth() -> None:
    @dataclass(frozen=True)
    class LoudNotice(Archive, NotifyByMail):
        pass

    @module(handlers=[NotifyHandler, ArchiveHandler, _ByMail])
    class Mixed: ...

    with pytest.raises(ModuleConfigurationError) as caught:
        App.build(Mixed)  # NotifyByMail is deeper, but unrelated to Archive: a tie
    [problem] = caught.value.problems
    assert isinstance(problem, AmbiguousHandlerError)
    assert [base for base, _ in problem.candidates] == [Archive, NotifyByMail]


class _ByMail(CommandHandler[NotifyByMail, str]):
    async def handle(self, request: NotifyByMail, /) -> str:
        return "mail"


async def test_a_tie_among_a_subclass_defined_after_the_build_fails_its_first_send() -> None:
    @module(handlers=[AuditHandler, ArchiveHandler, BothHandler])
    class Records: ...

    async with App.build(Records) as app:

        @dataclass(frozen=True)
        class Late(Audit, Archive):
            pass

        with pytest.raises(AmbiguousHandlerError, match="Request `Late` has no handler"):
            await app.send(Late())
        with pytest.raises(AmbiguousHandlerError):  # every time, not only the first
            await app.send(Late())
        assert await app.send(Audit()) == "audit"
