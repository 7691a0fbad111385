"""Envelopes and MessageContext: lazy ids, causation, correlation, headers, tracking switch."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from dockyard import App, module
from dockyard.exceptions import MessageContextError
from dockyard.messaging import (
    Command,
    CommandHandler,
    Envelope,
    Event,
    EventHandler,
    IMessageBus,
    MessageContext,
    MessagingSettings,
)

SEEN: list[Envelope] = []


@dataclass(frozen=True, slots=True)
class Checkout(Command[None]):
    pass


@dataclass(frozen=True, slots=True)
class CheckedOut(Event):
    pass


class CheckoutHandler(CommandHandler[Checkout, None]):
    def __init__(self, bus: IMessageBus, context: MessageContext) -> None:
        self.bus = bus
        self.context = context

    async def handle(self, request: Checkout, /) -> None:
        SEEN.append(self.context.envelope)
        await self.bus.publish(CheckedOut(), headers={"source": "checkout"})


class OnCheckedOut(EventHandler[CheckedOut]):
    def __init__(self, context: MessageContext) -> None:
        self.context = context

    async def handle(self, event: CheckedOut, /) -> None:
        SEEN.append(self.context.envelope)


@module(handlers=[CheckoutHandler, OnCheckedOut])
class Shop: ...


@pytest.fixture(autouse=True)
def _clear() -> None:
    SEEN.clear()


async def test_nested_messages_carry_causation_and_correlation() -> None:
    async with App.build(Shop) as app:
        await app.send(Checkout(), headers={"user": "u1"})
    command, event = SEEN
    assert command.message == Checkout()
    assert event.message == CheckedOut()
    assert event.parent is command
    assert command.causation_id is None
    assert command.correlation_id == command.message_id
    assert event.causation_id == command.message_id
    assert event.correlation_id == command.message_id
    assert event.message_id != command.message_id
    assert dict(command.headers) == {"user": "u1"}
    assert dict(event.headers) == {"source": "checkout"}
    assert uuid.UUID(command.message_id).version == 4
    assert abs((datetime.now(UTC) - command.timestamp).total_seconds()) < 5


async def test_given_ids_are_kept() -> None:
    async with App.build(Shop) as app:
        await app.send(
            Checkout(), message_id="m-1", correlation_id="c-1", causation_id="upstream-7"
        )
    command, event = SEEN
    assert (command.message_id, command.correlation_id, command.causation_id) == (
        "m-1",
        "c-1",
        "upstream-7",
    )
    assert (event.correlation_id, event.causation_id) == ("c-1", "m-1")
    assert repr(command) == "<Envelope Checkout id=m-1>"


async def test_ids_are_made_only_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[uuid.UUID] = []
    real = uuid.uuid4

    def counting() -> uuid.UUID:
        made.append(real())
        return made[-1]

    monkeypatch.setattr(uuid, "uuid4", counting)
    async with App.build(Shop) as app:
        await app.send(Checkout())
        assert made == []  # two envelopes, nobody read an id
        assert SEEN[1].causation_id == str(made[0])  # reading one makes exactly one
        assert len(made) == 1


async def test_tracking_is_on_only_when_something_depends_on_the_context() -> None:
    @dataclass(frozen=True, slots=True)
    class Ping(Command[str]):
        pass

    class PingHandler(CommandHandler[Ping, str]):
        async def handle(self, request: Ping, /) -> str:
            return "pong"

    @module(handlers=[PingHandler])
    class Plain: ...

    assert App.build(Plain)._dispatcher.tracking is False
    assert App.build(Shop)._dispatcher.tracking is True
    forced = App.build(Plain, messaging=MessagingSettings(track_context=True))
    assert forced._dispatcher.tracking is True
    off = App.build(Shop, messaging=MessagingSettings(track_context=False))
    assert off._dispatcher.tracking is False


async def test_reading_the_context_outside_a_message() -> None:
    async with App.build(Shop) as app:
        context = await app.get(MessageContext)
        with pytest.raises(MessageContextError) as caught:
            _ = context.message_id
    assert str(caught.value) == (
        "No message is being handled here, or the message being handled is of a type "
        "that is not tracked, so there is no message context. Hint: read "
        "`MessageContext` inside a handler's or a behavior's `handle`, depending on it "
        "in their constructor (that makes their message types tracked), or build with "
        "`messaging=MessagingSettings(track_context=True)`."
    )
    assert isinstance(caught.value, LookupError)


async def test_reading_the_context_with_tracking_off() -> None:
    async with App.build(Shop, messaging=MessagingSettings(track_context=False)) as app:
        with pytest.raises(MessageContextError) as caught:
            await app.send(Checkout())
    assert str(caught.value) == (
        "Message context tracking is off: nothing in the app declared a dependency on "
        "`MessageContext` when it was built. Hint: inject `MessageContext` in a constructor, "
        "or build with `messaging=MessagingSettings(track_context=True)`."
    )


async def test_context_shortcuts_read_the_current_envelope() -> None:
    values: list[object] = []

    @dataclass(frozen=True, slots=True)
    class Probe(Command[None]):
        pass

    class ProbeHandler(CommandHandler[Probe, None]):
        def __init__(self, context: MessageContext) -> None:
            self.context = context

        async def handle(self, request: Probe, /) -> None:
            c = self.context
            values.extend(
                [c.message_id, c.correlation_id, c.causation_id, dict(c.headers), c.timestamp]
            )

    @module(handlers=[ProbeHandler])
    class Root: ...

    async with App.build(Root) as app:
        await app.send(Probe(), message_id="p", headers={"k": "v"})
    assert values[:4] == ["p", "p", None, {"k": "v"}]
    assert isinstance(values[4], datetime)
