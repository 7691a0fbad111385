"""Events of a generic class reach the handlers of their parametrization, never the others."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pytest

from dockyard import App, Event, module, singleton
from dockyard.exceptions import (
    GenericMessageTypeError,
    InvalidProjectionError,
    ModuleConfigurationError,
)
from dockyard.messaging import EventHandler, IPublisher
from dockyard.projections import Projection, handles

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class UserJoined:
    user: str


@dataclass(frozen=True, slots=True)
class UserLeft:
    user: str


@dataclass(frozen=True, slots=True)
class VipLeft(UserLeft):
    pass


@dataclass(frozen=True, slots=True)
class Notification(Event, Generic[P]):
    room: str
    payload: P


class Seen:
    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []


class OnLeft(EventHandler[Notification[UserLeft]]):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def handle(self, event: Notification[UserLeft], /) -> None:
        self.seen.items.append(("left", event.payload.user))


class OnJoined(EventHandler[Notification[UserJoined]]):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def handle(self, event: Notification[UserJoined], /) -> None:
        self.seen.items.append(("joined", event.payload.user))


class OnAny(EventHandler[Notification[Any]]):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def handle(self, event: Notification[Any], /) -> None:
        self.seen.items.append(("any", type(event.payload).__name__))


class OnEvery(EventHandler[Notification]):  # type: ignore[type-arg]  # the bare class: all
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def handle(self, event: Notification[Any], /) -> None:
        self.seen.items.append(("every", type(event.payload).__name__))


def _app(*handlers: type) -> App:
    @module(providers=[singleton(Seen)], handlers=list(handlers))
    class Rooms: ...

    return App.build(Rooms)


async def test_each_handler_gets_only_its_parametrization() -> None:
    async with _app(OnLeft, OnJoined) as app:
        await app.publish(Notification("r", UserJoined("ada")))
        await app.publish(Notification("r", UserLeft("bob")))
        assert (await app.get(Seen)).items == [("joined", "ada"), ("left", "bob")]


async def test_subclass_of_the_argument_matches_and_other_payloads_reach_nobody() -> None:
    async with _app(OnLeft, OnJoined) as app:
        await app.publish(Notification("r", VipLeft("vip")))
        await app.publish(Notification("r", "a string payload"))
        assert (await app.get(Seen)).items == [("left", "vip")]


async def test_any_and_the_bare_class_take_every_parametrization() -> None:
    async with _app(OnLeft, OnAny, OnEvery) as app:
        await app.publish(Notification("r", UserJoined("ada")))
        await app.publish(Notification("r", UserLeft("bob")))
        seen = (await app.get(Seen)).items
    assert sorted(seen) == sorted(
        [
            ("any", "UserJoined"),
            ("every", "UserJoined"),
            ("left", "bob"),
            ("any", "UserLeft"),
            ("every", "UserLeft"),
        ]
    )


async def test_publishing_from_a_handler_scope_dispatches_the_same_way() -> None:
    @dataclass(frozen=True, slots=True)
    class Relay(Event):
        payload: object

    class Forward(EventHandler[Relay]):
        def __init__(self, publisher: IPublisher) -> None:
            self.publisher = publisher

        async def handle(self, event: Relay, /) -> None:
            await self.publisher.publish(Notification("r", event.payload))

    async with _app(Forward, OnLeft, OnJoined) as app:
        await app.publish(Relay(UserLeft("bob")))
        assert (await app.get(Seen)).items == [("left", "bob")]


async def test_the_registry_lists_every_handler_of_the_generic_class() -> None:
    app = _app(OnLeft, OnJoined)
    info = app.messages.get(Notification)
    assert info is not None
    assert {h.handler for h in info.handlers} == {OnLeft, OnJoined}


Q = TypeVar("Q")


@dataclass(frozen=True, slots=True)
class Opaque(Event, Generic[Q]):
    data: bytes  # no field typed `Q`: a parametrization is invisible at run time


class OnOpaque(EventHandler[Opaque[UserLeft]]):
    async def handle(self, event: Opaque[UserLeft], /) -> None: ...


class OnListOf(EventHandler[Notification[list[int]]]):
    async def handle(self, event: Notification[list[int]], /) -> None: ...


def test_a_parametrization_that_cannot_be_told_apart_is_refused_at_build() -> None:
    with pytest.raises(ModuleConfigurationError) as caught:
        _app(OnOpaque, OnListOf)
    problems = caught.value.problems
    assert all(isinstance(p, GenericMessageTypeError) for p in problems)
    text = [str(p) for p in problems]
    assert text[0] == (
        "Handler `OnOpaque` in module `Rooms` handles `Opaque[UserLeft]`, but no field of "
        "`Opaque` is typed with `Q`, so a `Opaque[UserLeft]` cannot be told apart from another "
        "parametrization at run time. Hint: type a field of the message with each type "
        "parameter (e.g. `payload: P`) and parametrize with classes, or handle the "
        "unparametrized class and check the payload in the handler."
    )
    assert "`list[int]` is not a class" in text[1]


def test_a_projection_of_a_parametrized_event_is_refused() -> None:
    with pytest.raises(InvalidProjectionError, match=r"parametrized `Notification\[\.\.\.\]`"):

        class Lefts(Projection):
            name = "lefts"

            @handles
            async def left(self, event: Notification[UserLeft]) -> None: ...
