"""Build-time messaging problems, reported with the module problems in one error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pytest

from dockyard import App, module
from dockyard.exceptions import (
    DuplicateHandlerError,
    MissingMessageTypeError,
    MissingProviderError,
    ModuleConfigurationError,
    NotAModuleError,
)
from dockyard.messaging import (
    ChainHandler,
    Command,
    CommandHandler,
    EventHandler,
    RequestHandler,
    StreamHandler,
    StreamRequest,
)

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class Ship(Command[None]):
    pass


class ShipHandler(CommandHandler[Ship, None]):
    async def handle(self, request: Ship, /) -> None: ...


class ShipAgain(CommandHandler[Ship, None]):
    async def handle(self, request: Ship, /) -> None: ...


class Unnamed(RequestHandler):  # type: ignore[type-arg]
    async def handle(self, request: Any, /) -> Any: ...


class StillGeneric(EventHandler[M], Generic[M]):
    async def handle(self, event: M, /) -> None: ...


class NotAHandler:
    async def handle(self, request: Ship) -> None: ...


def problems_of(root: type) -> list[Exception]:
    with pytest.raises(ModuleConfigurationError) as caught:
        App.build(root)
    return list(caught.value.problems)


def test_handler_without_message_type() -> None:
    @module(handlers=[Unnamed, StillGeneric, NotAHandler])
    class Root: ...

    problems = problems_of(Root)
    assert all(isinstance(p, MissingMessageTypeError) for p in problems)
    assert all(isinstance(p, TypeError) for p in problems)
    assert [str(p) for p in problems] == [
        (
            "Handler `Unnamed` in module `Root` subclasses `RequestHandler` without naming a "
            "message type. Hint: name it in the base, e.g. "
            "`class Unnamed(RequestHandler[PlaceOrder, ...])`."
        ),
        (
            "Handler `StillGeneric` in module `Root` subclasses `EventHandler` without naming a "
            "message type. Hint: name it in the base, e.g. "
            "`class StillGeneric(EventHandler[PlaceOrder, ...])`."
        ),
        (
            "`NotAHandler` in module `Root` handlers is not a message handler. Hint: subclass "
            "`RequestHandler[Message, Result]`, `EventHandler[Event]`, "
            "`StreamHandler[Message, Item]` or `ChainHandler[Message, Result]`."
        ),
    ]


def test_generic_handler_bound_in_a_subclass_is_fine() -> None:
    class Concrete(StillGeneric[Ship]): ...

    @module(handlers=[Concrete])
    class Root: ...

    info = App.build(Root).messages.get(Ship)
    assert info is not None
    assert info.kind == "event"


def test_two_handlers_for_one_request() -> None:
    @module(handlers=[ShipHandler])
    class Warehouse: ...

    @module(imports=[Warehouse], handlers=[ShipAgain])
    class Root: ...

    [problem] = problems_of(Root)
    assert isinstance(problem, DuplicateHandlerError)
    assert str(problem) == (
        "Request `Ship` has 2 handlers: `ShipHandler` (module `Warehouse`) and `ShipAgain` "
        "(module `Root`); a request has exactly one. Hint: remove all but one, use events "
        "for several reactions, or make them `ChainHandler`s to try them in order."
    )


def test_chain_links_mixed_with_a_plain_handler() -> None:
    class Link(ChainHandler[Ship, None]):
        async def handle(self, request: Ship, call_next: Any, /) -> None: ...

    @dataclass(frozen=True, slots=True)
    class Feed(StreamRequest[int]):
        pass

    class FeedA(StreamHandler[Feed, int]):
        def handle(self, request: Feed, /) -> Any: ...

    class FeedB(StreamHandler[Feed, int]):
        def handle(self, request: Feed, /) -> Any: ...

    @module(handlers=[ShipHandler, Link, FeedA, FeedB])
    class Root: ...

    problems = problems_of(Root)
    assert [type(p) for p in problems] == [DuplicateHandlerError, DuplicateHandlerError]
    assert "Request `Ship` has 2 handlers: `ShipHandler`" in str(problems[0])
    assert "Request `Feed` has 2 handlers: `FeedA`" in str(problems[1])


class Missing:
    pass


class NeedsMissing(CommandHandler[Ship, None]):
    def __init__(self, dependency: Missing) -> None:
        self.dependency = dependency

    async def handle(self, request: Ship, /) -> None: ...


def test_messaging_and_module_problems_are_reported_together() -> None:
    @module(imports=[NotAHandler], handlers=[NeedsMissing, Unnamed])
    class Root: ...

    problems = problems_of(Root)
    assert [type(p) for p in problems] == [
        NotAModuleError,
        MissingProviderError,
        MissingMessageTypeError,
    ]
    # The module system checks a handler's dependencies against its module's boundary.
    assert str(problems[1]).startswith(
        "Module `Root` needs `Missing` (for `NeedsMissing`), but no module provides it."
    )
