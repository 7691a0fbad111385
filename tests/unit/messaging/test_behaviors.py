"""Pipeline behaviors: global, per message type and per handler; logging; transactions."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dockyard import App, module, scoped
from dockyard.exceptions import (
    InvalidBehaviorError,
    MissingProviderError,
    ModuleConfigurationError,
)
from dockyard.messaging import (
    Command,
    CommandHandler,
    Event,
    EventHandler,
    ISender,
    LoggingBehavior,
    MessagingSettings,
    PipelineBehavior,
    Query,
    QueryHandler,
    StreamHandler,
    StreamRequest,
    TransactionalBehavior,
    UnitOfWork,
)

TRACE: list[str] = []


class Tag(PipelineBehavior[Any, Any]):
    """Records its name around the call."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def handle(self, message: Any, call_next: Callable[[], Awaitable[Any]], /) -> Any:
        TRACE.append(f"{self.name}>")
        result = await call_next()
        TRACE.append(f"<{self.name}")
        return result


class CommandsOnly(PipelineBehavior[Command[Any], Any]):
    async def handle(
        self, message: Command[Any], call_next: Callable[[], Awaitable[Any]], /
    ) -> Any:
        TRACE.append("commands-only")
        return await call_next()


@dataclass(frozen=True, slots=True)
class Rename(Command[str]):
    name: str


@dataclass(frozen=True, slots=True)
class Lookup(Query[str]):
    pass


@dataclass(frozen=True, slots=True)
class Renamed(Event):
    name: str


@dataclass(frozen=True, slots=True)
class Letters(StreamRequest[str]):
    word: str


class RenameHandler(CommandHandler[Rename, str]):
    async def handle(self, request: Rename, /) -> str:
        TRACE.append("rename")
        return request.name.upper()


class LookupHandler(QueryHandler[Lookup, str]):
    async def handle(self, request: Lookup, /) -> str:
        TRACE.append("lookup")
        return "found"


class OnRenamed(EventHandler[Renamed]):
    async def handle(self, event: Renamed, /) -> None:
        TRACE.append("on-renamed")


class LettersHandler(StreamHandler[Letters, str]):
    async def handle(self, request: Letters, /) -> AsyncIterator[str]:
        for letter in request.word:
            TRACE.append(letter)
            yield letter


@module(handlers=[RenameHandler, LookupHandler, OnRenamed, LettersHandler])
class Root: ...


@pytest.fixture(autouse=True)
def _clear() -> None:
    TRACE.clear()


SETTINGS = MessagingSettings(
    behaviors=[Tag("global"), CommandsOnly()],
    message_behaviors={Command: [Tag("command")], Rename: [Tag("rename")]},
    handler_behaviors={RenameHandler: [Tag("handler")], OnRenamed: [Tag("on-renamed")]},
)


async def test_order_is_global_then_base_messages_then_message_then_handler() -> None:
    async with App.build(Root, messaging=SETTINGS) as app:
        assert await app.send(Rename("x")) == "X"
    assert TRACE == [
        "global>",
        "commands-only",
        "command>",
        "rename>",
        "handler>",
        "rename",
        "<handler",
        "<rename",
        "<command",
        "<global",
    ]
    info = app.messages.get(Rename)
    assert info is not None
    assert info.handlers[0].behaviors == ("Tag", "CommandsOnly", "Tag", "Tag", "Tag")


async def test_generic_parameter_filters_global_behaviors() -> None:
    async with App.build(Root, messaging=SETTINGS) as app, app.scope() as scope:
        sender = await scope.get(ISender)
        assert await sender.send(Lookup()) == "found"
        assert await sender.send(Lookup()) == "found"  # behaviors run on every call
    assert TRACE == ["global>", "lookup", "<global"] * 2


async def test_behaviors_wrap_each_event_handler() -> None:
    async with App.build(Root, messaging=SETTINGS) as app:
        await app.publish(Renamed("x"))
    assert TRACE == ["global>", "on-renamed>", "on-renamed", "<on-renamed", "<global"]


async def test_behaviors_wrap_streams() -> None:
    async with App.build(Root, messaging=SETTINGS) as app:
        assert [x async for x in app.stream(Letters("ab"))] == ["a", "b"]
    # The stream is created inside the behaviors; its items flow after they return.
    assert TRACE == ["global>", "<global", "a", "b"]


class Recorder:
    """A scoped unit of work double that records what happened to it."""

    log: list[str]

    def __init__(self) -> None:
        self.log = []

    async def commit(self) -> None:
        self.log.append("commit")
        UOW_LOG.append("commit")

    async def rollback(self) -> None:
        self.log.append("rollback")
        UOW_LOG.append("rollback")


UOW_LOG: list[str] = []


def make_uow() -> UnitOfWork:
    return Recorder()


@dataclass(frozen=True, slots=True)
class Outer(Command[None]):
    fail: bool = False


class OuterHandler(CommandHandler[Outer, None]):
    def __init__(self, sender: ISender) -> None:
        self.sender = sender

    async def handle(self, request: Outer, /) -> None:
        await self.sender.send(Rename("inner"))  # joins the outer transaction
        UOW_LOG.append("handled")
        if request.fail:
            raise RuntimeError("outer failed")


@module(providers=[scoped(make_uow)], exports=[UnitOfWork], handlers=[OuterHandler])
class Db: ...


@module(imports=[Db, Root])
class TxRoot: ...


TX = MessagingSettings(message_behaviors={Command: [TransactionalBehavior]})


async def test_transaction_commits_once_for_the_outermost_message() -> None:
    UOW_LOG.clear()
    async with App.build(TxRoot, messaging=TX) as app:
        await app.send(Outer())
        assert UOW_LOG == ["handled", "commit"]
        UOW_LOG.clear()
        with pytest.raises(RuntimeError, match="outer failed"):
            await app.send(Outer(fail=True))
        assert UOW_LOG == ["handled", "rollback"]
        UOW_LOG.clear()
        assert await app.send(Lookup()) == "found"  # a query: not transactional
        assert UOW_LOG == []


@dataclass(frozen=True, slots=True)
class Export(StreamRequest[int]):
    fail: bool = False


class ExportHandler(StreamHandler[Export, int]):
    async def handle(self, request: Export, /) -> AsyncIterator[int]:
        yield 1
        UOW_LOG.append("yielded")
        if request.fail:
            raise RuntimeError("export failed")
        yield 2


@module(imports=[Db], handlers=[ExportHandler])
class StreamRoot: ...


async def test_transaction_around_a_stream_waits_for_its_end() -> None:
    UOW_LOG.clear()
    settings = MessagingSettings(behaviors=[TransactionalBehavior])
    async with App.build(StreamRoot, messaging=settings) as app:
        assert [x async for x in app.stream(Export())] == [1, 2]
        assert UOW_LOG == ["yielded", "commit"]
        UOW_LOG.clear()
        with pytest.raises(RuntimeError, match="export failed"):
            async for _ in app.stream(Export(fail=True)):
                pass
        assert UOW_LOG == ["yielded", "rollback"]


async def test_logging_behavior_logs_success_and_failure(caplog: pytest.LogCaptureFixture) -> None:
    settings = MessagingSettings(behaviors=[LoggingBehavior(level=logging.INFO)])
    caplog.set_level(logging.INFO, logger="dockyard.messaging")
    async with App.build(TxRoot, messaging=settings) as app:
        await app.send(Lookup())
        with pytest.raises(RuntimeError):
            await app.send(Outer(fail=True))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "handling Lookup"
    assert messages[1].startswith("handled Lookup in ")
    assert messages[1].endswith(" ms")
    assert messages[2:4] == ["handling Outer", "handling Rename"]
    assert messages[4].startswith("handled Rename in ")
    assert messages[5].startswith("Outer failed after ")
    assert caplog.records[5].levelno == logging.ERROR
    assert caplog.records[5].exc_info is not None


async def test_logging_behavior_is_silent_when_the_level_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("tests.messaging.quiet")
    logger.setLevel(logging.WARNING)
    settings = MessagingSettings(behaviors=[LoggingBehavior(logger, level=logging.DEBUG)])
    async with App.build(Root, messaging=settings) as app:
        assert await app.send(Lookup()) == "found"
    assert caplog.records == []
    assert TRACE == ["lookup"]


def test_behavior_class_dependencies_are_checked_against_the_root() -> None:
    @module(handlers=[RenameHandler])  # nobody provides UnitOfWork
    class Bare: ...

    with pytest.raises(ModuleConfigurationError) as caught:
        App.build(Bare, messaging=TX)
    [problem] = caught.value.problems
    assert isinstance(problem, MissingProviderError)
    assert str(problem) == (
        "Module `Bare` needs `UnitOfWork` (for behavior `TransactionalBehavior`), but no "
        "module provides it. Hint: add a provider for `UnitOfWork` to `Bare`, or import a "
        "module that provides and exports it."
    )


def test_something_that_is_not_a_behavior_is_reported() -> None:
    settings = MessagingSettings(behaviors=[print], handler_behaviors={RenameHandler: [42]})
    with pytest.raises(ModuleConfigurationError) as caught:
        App.build(Root, messaging=settings)
    assert [str(p) for p in caught.value.problems] == [
        (
            "`42` in handler_behaviors[RenameHandler] is not a pipeline behavior. "
            "Hint: give an instance or a subclass of `PipelineBehavior`."
        ),
        (
            "`<built-in function print>` in MessagingSettings.behaviors is not a pipeline "
            "behavior. Hint: give an instance or a subclass of `PipelineBehavior`."
        ),
    ]
    assert all(isinstance(p, InvalidBehaviorError) for p in caught.value.problems)


def test_behavior_class_with_unresolvable_hints_is_reported() -> None:
    settings = MessagingSettings(behaviors=[Tag])  # Tag takes a `str`, which nobody provides
    with pytest.raises(ModuleConfigurationError) as caught:
        App.build(Root, messaging=settings)
    assert [type(p) for p in caught.value.problems] == [MissingProviderError]
    assert "needs `str` (for behavior `Tag`)" in str(caught.value.problems[0])
