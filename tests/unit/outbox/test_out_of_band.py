"""Running one event handler out of band (through the outbox, the relay and the app's own
consumer), the others inline, each once (issue #17, waku's "routed handlers")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dockyard.app import App
from dockyard.consumer import ConsumerModule, ErrorPolicies, listen, retry_later
from dockyard.di import singleton
from dockyard.exceptions import (
    ConsumedRouteError,
    HandlerNotFoundError,
    InvalidRouteError,
    ModuleConfigurationError,
    OutOfBandWithoutConsumerError,
)
from dockyard.messaging import (
    Command,
    CommandHandler,
    Event,
    EventHandler,
    IMessageBus,
    IPublisher,
    MessagingSettings,
    PipelineBehavior,
)
from dockyard.messaging._bus import MessageBus
from dockyard.modules import ModuleLike, module
from dockyard.outbox import (
    DeadLetters,
    OutboxModule,
    OutboxStatus,
    OutboxStore,
    out_of_band,
    out_of_band_of,
    route,
)
from dockyard.outbox.memory import InMemoryOutboxBackend
from dockyard.transport import CAUSATION_ID, CORRELATION_ID, Transport, TransportMessage
from dockyard.transport.memory import InMemoryTransport


@dataclass(frozen=True, slots=True)
class UserSignedUp(Event):
    user_id: str


@dataclass(frozen=True, slots=True)
class SignUp(Command[None]):
    user_id: str
    refuse: bool = False


@dataclass(frozen=True, slots=True)
class WelcomeSent(Event):
    user_id: str


RAN: list[str] = []


class MailRefused(Exception): ...


class SignUpHandler(CommandHandler[SignUp, None]):
    def __init__(self, events: IPublisher) -> None:
        self._events = events

    async def handle(self, command: SignUp, /) -> None:
        await self._events.publish(UserSignedUp(command.user_id))
        if command.refuse:
            raise PermissionError(command.user_id)  # the scope rolls back


class CreateProfile(EventHandler[UserSignedUp]):
    async def handle(self, event: UserSignedUp, /) -> None:
        RAN.append(f"profile:{event.user_id}")


class SendWelcomeEmail(EventHandler[UserSignedUp]):
    failures_left = 0

    def __init__(self, events: IPublisher) -> None:
        self._events = events

    async def handle(self, event: UserSignedUp, /) -> None:
        if SendWelcomeEmail.failures_left > 0:
            SendWelcomeEmail.failures_left -= 1
            raise MailRefused("smtp said no")
        RAN.append(f"email:{event.user_id}")
        await self._events.publish(WelcomeSent(event.user_id))


class AuditBehavior(PipelineBehavior[UserSignedUp, None]):
    async def handle(self, message: UserSignedUp, call_next: Any) -> None:
        RAN.append(f"audit:{message.user_id}")
        await call_next()


@pytest.fixture(autouse=True)
def _clean() -> None:
    RAN.clear()
    SendWelcomeEmail.failures_left = 0


def users_app(
    *handlers: type,
    endpoints: tuple[str, ...] = ("background",),
    routes: tuple[type, ...] = (),
    settings: MessagingSettings | None = None,
    policies: ErrorPolicies | None = None,
    imports: tuple[ModuleLike, ...] = (),
) -> App:
    imports = (
        *imports,
        OutboxModule.register(
            transport=InMemoryTransport(), backend=InMemoryOutboxBackend(), routes=routes
        ),
    )
    if endpoints:
        listening = [listen(d, group="users", policies=policies) for d in endpoints]
        imports = (*imports, ConsumerModule.register(endpoints=listening))

    @module(handlers=[SignUpHandler, *handlers], imports=imports)
    class Users: ...

    return App.build(Users, messaging=settings)


async def run_worker_until(app: App, done: Callable[[], bool]) -> None:
    """Run the app's worker (relay and consumers) until ``done()`` holds."""
    stop = asyncio.Event()
    worker = asyncio.create_task(app.run_worker(stop=stop))
    try:
        async with asyncio.timeout(60):
            while not done():
                assert not worker.done(), worker
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await worker


def test_routing_an_event_to_a_destination_the_app_consumes_is_refused_at_build() -> None:
    # What a waku user tries first: route the event to the app's own destination. It ran
    # every handler twice, then dead-lettered on the outbox's unique message id.
    with pytest.raises(ModuleConfigurationError) as raised:
        users_app(CreateProfile, SendWelcomeEmail, routes=(route(UserSignedUp).to("background"),))
    [problem] = raised.value.problems
    assert isinstance(problem, ConsumedRouteError)
    assert str(problem) == (
        "Module `OutboxModule` routes `UserSignedUp` to `background`, which this app also "
        "consumes "
        "(`consumer:background:users`): each `UserSignedUp` would run its handlers here twice "
        "and be routed again under its own id (a dead letter). Hint: to run a handler in the "
        'background, list `out_of_band(Handler, destination="background")` in place of the '
        "route; to reach other apps, route it to a destination this app does not consume."
    )


def test_an_out_of_band_handler_nobody_listens_for_is_refused_at_build() -> None:
    stand_in = out_of_band(SendWelcomeEmail, destination="emails")
    for endpoints in [(), ("elsewhere",)]:
        with pytest.raises(ModuleConfigurationError) as raised:
            users_app(CreateProfile, stand_in, endpoints=endpoints)
        [problem] = raised.value.problems
        assert isinstance(problem, OutOfBandWithoutConsumerError)
        assert str(problem) == (
            "Module `Users` runs `SendWelcomeEmail` out of band through `emails`, and no "
            "endpoint of this app listens to `emails`: its messages would wait in the broker, "
            'never handled. Hint: add `listen("emails", group=...)` to '
            "`ConsumerModule.register(endpoints=[...])` in this app."
        )


def test_only_event_handlers_run_out_of_band() -> None:
    with pytest.raises(InvalidRouteError, match="only an event handler class"):
        out_of_band(SignUpHandler, destination="background")
    with pytest.raises(InvalidRouteError, match="the destination ' ' is empty"):
        out_of_band(SendWelcomeEmail, destination=" ")
    stand_in = out_of_band(SendWelcomeEmail, destination="background")
    with pytest.raises(InvalidRouteError, match="already a handler run out of band"):
        out_of_band(stand_in, destination="background")


async def test_inline_handlers_run_in_the_publish_the_out_of_band_one_in_the_worker() -> None:
    stand_in = out_of_band(SendWelcomeEmail, destination="background")
    app = users_app(CreateProfile, stand_in)
    [info] = [i for i in app.messages if i.message_type is UserSignedUp]
    assert [h.handler for h in info.handlers] == [CreateProfile, stand_in]
    assert out_of_band_of(stand_in) is not None
    async with app:
        await app.send(SignUp("u-1"))
        assert RAN == ["profile:u-1"]  # inline, in the publishing scope; not the email
        store = await app.get(OutboxStore)
        assert (await store.counts())[OutboxStatus.PENDING] == 1
        await run_worker_until(app, lambda: "email:u-1" in RAN)
        await run_worker_until(app, lambda: True)  # once more: nothing runs again
        dead = await (await app.get(DeadLetters)).list()
    assert (RAN, dead) == (["profile:u-1", "email:u-1"], [])


async def test_a_rolled_back_publish_runs_neither() -> None:
    app = users_app(CreateProfile, out_of_band(SendWelcomeEmail, destination="background"))
    async with app:
        with pytest.raises(PermissionError):
            await app.send(SignUp("u-1", refuse=True))
        store = await app.get(OutboxStore)
        assert (await store.counts())[OutboxStatus.PENDING] == 0  # the stand-in's row too
        await app.send(SignUp("u-2"))
        await run_worker_until(app, lambda: "email:u-2" in RAN)
    assert "email:u-1" not in RAN


async def test_its_failures_retry_then_dead_letter_and_leave_the_inline_ones_alone() -> None:
    policies = ErrorPolicies(default=retry_later(3, initial_delay=0.0))
    app = users_app(
        CreateProfile,
        out_of_band(SendWelcomeEmail, destination="background"),
        policies=policies,
    )
    async with app:
        SendWelcomeEmail.failures_left = 2  # two attempts fail, the third succeeds
        await app.send(SignUp("u-1"))
        await run_worker_until(app, lambda: "email:u-1" in RAN)
        SendWelcomeEmail.failures_left = 100  # never succeeds: a dead letter after 3
        await app.send(SignUp("u-2"))
        dead = await app.get(DeadLetters)
        letters: list[Any] = []

        async def dead_lettered() -> None:
            while not letters:
                letters.extend(await dead.list())
                await asyncio.sleep(0.01)

        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        async with asyncio.timeout(60):
            await dead_lettered()
        stop.set()
        await worker
    assert RAN == ["profile:u-1", "email:u-1", "profile:u-2"]
    [letter] = letters
    assert letter.attempts == 3
    assert letter.headers["dockyard-handler"] == f"{__name__}.SendWelcomeEmail"
    assert letter.last_error == "consumer:background:users: MailRefused: smtp said no"


async def test_it_runs_with_its_behaviors_and_passes_on_its_messages_ids() -> None:
    settings = MessagingSettings(handler_behaviors={SendWelcomeEmail: [AuditBehavior]})
    app = users_app(
        CreateProfile,
        out_of_band(SendWelcomeEmail, destination="background"),
        routes=(route(WelcomeSent).to("mail-log"),),
        settings=settings,
    )
    async with app:
        transport = await app.get(Transport)
        for destination in ["background", "mail-log"]:  # a copy of each for this test
            await transport.declare(destination, "probe")
        await app.send(SignUp("u-1"), message_id="cmd-1")
        assert RAN == ["profile:u-1"]  # the behavior wraps the handler, not its stand-in
        await run_worker_until(app, lambda: "email:u-1" in RAN)
        [out_of_band_message] = await received(transport, "background")
        [welcome] = await received(transport, "mail-log")
    assert RAN == ["profile:u-1", "audit:u-1", "email:u-1"]
    assert out_of_band_message.headers["dockyard-handler"] == f"{__name__}.SendWelcomeEmail"
    assert out_of_band_message.headers[CORRELATION_ID] == "cmd-1"
    # What the handler publishes is not for it: the header names the handled message's.
    assert "dockyard-handler" not in welcome.headers
    assert welcome.headers[CAUSATION_ID] == out_of_band_message.message_id
    assert welcome.headers[CORRELATION_ID] == "cmd-1"


async def received(transport: Transport, destination: str) -> list[TransportMessage]:
    """What waits for the ``probe`` group at ``destination``."""
    found: list[TransportMessage] = []
    async with transport.subscribe(destination, "probe") as subscription:
        deliveries = aiter(subscription)
        while True:
            try:
                async with asyncio.timeout(0.5):
                    delivery = await anext(deliveries)
            except TimeoutError:
                return found
            found.append(delivery.message)
            await delivery.ack()


async def test_a_message_for_a_handler_the_app_does_not_run_is_a_dead_letter() -> None:
    app = users_app(CreateProfile, out_of_band(SendWelcomeEmail, destination="background"))
    async with app:
        transport = await app.get(Transport)
        message = TransportMessage(
            "m-1",
            "background",
            "UserSignedUp",
            b'{"user_id":"u-9"}',
            headers={"dockyard-handler": "elsewhere.Gone"},
        )
        await transport.publish(message)
        dead = await app.get(DeadLetters)
        letters: list[Any] = []
        stop = asyncio.Event()
        worker = asyncio.create_task(app.run_worker(stop=stop))
        async with asyncio.timeout(60):
            while not letters:
                letters.extend(await dead.list())
                await asyncio.sleep(0.01)
        stop.set()
        await worker
    assert RAN == []
    [letter] = letters
    assert letter.last_error == (
        "consumer:background:users: `UserSignedUp` is for handler `elsewhere.Gone`, which this "
        "app does not run out of band. Hint: list `out_of_band(Handler, destination=...)` for "
        "it in this app's modules, or consume this destination in the app that does; then "
        "replay the dead letter"
    )


async def test_the_bus_runs_only_handlers_the_app_runs_out_of_band() -> None:
    app = users_app(CreateProfile, out_of_band(SendWelcomeEmail, destination="background"))
    async with app, app.scope() as scope:
        bus = await scope.get(IMessageBus)
        assert isinstance(bus, MessageBus)
        await bus.run_handler(f"{__name__}.SendWelcomeEmail", UserSignedUp("u-1"))
        assert RAN == ["email:u-1"]
        with pytest.raises(HandlerNotFoundError) as raised:
            await bus.run_handler(f"{__name__}.CreateProfile", UserSignedUp("u-2"))
    assert str(raised.value) == (
        "`run_handler` got `UserSignedUp` for a handler this app does not run out of band "
        f"(those it does: `{__name__}.SendWelcomeEmail`). Hint: list `out_of_band(Handler, "
        "destination=...)` in a module's `handlers=[...]`."
    )


class Mailer:
    """Provided by `Mailing` only, not exported: the handler sees it from its own module."""

    def __init__(self) -> None:
        self.sent: list[str] = []


class SendThroughMailer(EventHandler[UserSignedUp]):
    def __init__(self, mailer: Mailer) -> None:
        self._mailer = mailer

    async def handle(self, event: UserSignedUp, /) -> None:
        RAN.append(f"mailer:{event.user_id}")


async def test_it_resolves_with_the_visibility_of_the_module_that_lists_it() -> None:
    @module(
        providers=[singleton(Mailer)],
        handlers=[out_of_band(SendThroughMailer, destination="background")],
    )
    class Mailing: ...

    app = users_app(CreateProfile, imports=(Mailing,))
    async with app:
        await app.send(SignUp("u-1"))
        await run_worker_until(app, lambda: "mailer:u-1" in RAN)
    assert RAN == ["profile:u-1", "mailer:u-1"]
