"""app.messages as data; message classes of every flavour; the one private Dishka call."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import attrs
import msgspec
import pydantic
from dishka import AsyncContainer, Provider, Scope, make_async_container
from dishka.entities.key import DependencyKey

from dockyard import App, module
from dockyard.messaging import (
    Command,
    CommandHandler,
    Event,
    EventHandler,
    HandlerInfo,
    MessageInfo,
    Query,
    QueryHandler,
)
from dockyard.messaging._dishka import getter, public_getter


class PydanticCmd(pydantic.BaseModel, Command[int]):
    value: int


class StructQuery(msgspec.Struct, Query[int], frozen=True):
    value: int


@attrs.frozen
class AttrsEvent(Event):
    value: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseEvent(Event):
    value: int


GOT: list[object] = []


class PydanticHandler(CommandHandler[PydanticCmd, int]):
    async def handle(self, request: PydanticCmd, /) -> int:
        return request.value + 1


class StructHandler(QueryHandler[StructQuery, int]):
    async def handle(self, request: StructQuery, /) -> int:
        return request.value * 2


class AttrsHandler(EventHandler[AttrsEvent]):
    async def handle(self, event: AttrsEvent, /) -> None:
        GOT.append(event)


class AnyEvent(EventHandler[Event]):
    async def handle(self, event: Event, /) -> None:
        GOT.append(type(event).__name__)


@module(handlers=[PydanticHandler, StructHandler])
class Requests: ...


@module(imports=[Requests], handlers=[AttrsHandler, AnyEvent])
class Root: ...


async def test_pydantic_msgspec_and_attrs_messages() -> None:
    GOT.clear()
    async with App.build(Root) as app:
        assert await app.send(PydanticCmd(value=1)) == 2
        assert await app.send(StructQuery(value=4)) == 8
        await app.publish(AttrsEvent(value=3))
    assert [AttrsEvent(value=3), "AttrsEvent"] == GOT


def test_registry_lists_modules_handlers_and_behaviors() -> None:
    app = App.build(Root)
    assert list(app.messages) == [
        MessageInfo(PydanticCmd, "request", (HandlerInfo(PydanticHandler, "Requests", ()),)),
        MessageInfo(StructQuery, "request", (HandlerInfo(StructHandler, "Requests", ()),)),
        MessageInfo(AttrsEvent, "event", (HandlerInfo(AttrsHandler, "Root", ()),)),
        MessageInfo(Event, "event", (HandlerInfo(AnyEvent, "Root", ()),)),
    ]
    assert len(app.messages) == 4
    assert app.messages.get(BaseEvent) is None
    assert [h.handler for h in app.messages.event_handlers(AttrsEvent)] == [
        AttrsHandler,
        AnyEvent,
    ]
    assert [h.handler for h in app.messages.event_handlers(BaseEvent)] == [AnyEvent]


class Service:
    pass


async def test_private_dishka_getter_matches_the_public_api() -> None:
    # dockyard.messaging._dishka calls AsyncContainer._get_unlocked / _get with a
    # precomputed DependencyKey. If Dishka renames them or changes what they take, this
    # fails: switch _dishka.getter to public_getter.
    for name in ("_get_unlocked", "_get"):
        method = getattr(AsyncContainer, name)
        assert list(inspect.signature(method).parameters) == ["self", "key"]
    provider = Provider(scope=Scope.REQUEST, component="elsewhere")
    provider.provide(Service)
    container = make_async_container(provider)
    key = DependencyKey(Service, "elsewhere")
    async with container() as scope:
        assert scope.lock is None
        got: Any = await getter(scope)(key)
        assert isinstance(got, Service)
        assert await public_getter(scope)(key) is got
        assert await scope.get(Service, component="elsewhere") is got
    async with container(lock_factory=_Lock) as locked:
        assert getter(locked).__name__ == "_get"
        assert isinstance(await getter(locked)(key), Service)
    await container.close()


class _Lock:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *args: object) -> None:
        return None
