"""Messaging: send and publish through dockyard beside raw Dishka and the peer mediators.

Every contender runs the same work: a handler with one scoped dependency (``Counter``) adds the
command's number to it. Three tables:

1. ``send`` in a new scope — Dishka alone opens a scope, gets the handler, awaits it;
   dockyard ``await app.send(cmd)``; python-cqrs 5.3 ``mediator.send`` with its Dishka adapter
   and ``ScopeStrategy.SEND`` (bootstrap defaults otherwise); waku 0.43 opens
   ``app.container()``, gets ``ISender`` and ``invoke``\\s; mediatr builds the handler and its
   dependency per call (it has no container).
2. ``send`` inside an open scope — a direct ``await handler.handle(cmd)`` against the
   ``ISender`` injected in that scope.
3. ``publish`` one event to 3 handlers, each with one scoped dependency, new scope — Dishka
   alone (open, get 3 handlers, await each), dockyard ``app.publish``, python-cqrs's
   ``EventMediator``, waku (its ``publish`` queues to a local endpoint worker, so its row is
   timed until every handler has run).

python-cq 0.25 (with its ``injection`` extra, python-injection 0.26) joins tables 1 and 3 when
importable (it needs Python ≥ 3.12); otherwise each table says so. Its command bus opens a
python-injection scope (``CQScope.COMMAND_DISPATCH``) per dispatch; its event bus opens none, so
its publish row opens one with ``adefine_scope`` around ``dispatch`` — the bus then runs the 3
handlers as concurrent anyio tasks, which share that scope's ``Counter``. It has no row in
table 2: its command bus always opens a new scope and refuses to run inside an open one.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dishka import Provider, Scope, make_async_container

from bench._harness import Contender, Scenario, print_table, run_async
from dockyard import App, module, scoped
from dockyard.messaging import Command, CommandHandler, Event, EventHandler, ISender

N = 20_000


class Counter:
    """The scoped dependency every handler uses."""

    __slots__ = ("total",)

    def __init__(self) -> None:
        self.total = 0


# -- dockyard (also what raw Dishka and mediatr run) -------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Add(Command[int]):
    amount: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Added(Event):
    amount: int


class AddHandler(CommandHandler[Add, int]):
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    async def handle(self, request: Add, /) -> int:
        self.counter.total += request.amount
        return self.counter.total


def _event_handler(index: int) -> type[EventHandler[Added]]:
    class OnAdded(EventHandler[Added]):
        def __init__(self, counter: Counter) -> None:
            self.counter = counter

        async def handle(self, event: Added, /) -> None:
            self.counter.total += event.amount

    OnAdded.__qualname__ = OnAdded.__name__ = f"OnAdded{index}"
    return OnAdded


EVENT_HANDLERS = [_event_handler(i) for i in range(3)]


@module(providers=[scoped(Counter)], handlers=[AddHandler, *EVENT_HANDLERS])
class BenchModule: ...


def _loop(step: Callable[[], Awaitable[object]]) -> Callable[[int], Awaitable[None]]:
    async def run(n: int) -> None:
        for _ in range(n):
            await step()

    return run


def _dishka() -> Any:
    provider = Provider(scope=Scope.REQUEST)
    provider.provide(Counter)
    provider.provide(AddHandler)
    for handler in EVENT_HANDLERS:
        provider.provide(handler)
    return make_async_container(provider)


# -- peers ---------------------------------------------------------------------------------


def _available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _cqrs_contenders() -> tuple[Contender, Contender]:
    import cqrs
    from cqrs.bootstrap import events as cqrs_events
    from cqrs.bootstrap import requests as cqrs_requests
    from cqrs.container.dishka import DishkaCQRSContainer
    from cqrs.container.scope import ScopeStrategy

    @dataclass
    class CqAdd(cqrs.DCRequest):
        amount: int

    @dataclass
    class CqResult(cqrs.DCResponse):
        total: int

    class CqAdded(cqrs.DCDomainEvent):  # dataclass'd (frozen) by its base
        amount: int

    class CqAddHandler(cqrs.RequestHandler[CqAdd, CqResult]):
        def __init__(self, counter: Counter) -> None:
            self.counter = counter

        @property
        def events(self) -> list[Any]:
            return []

        async def handle(self, request: CqAdd) -> CqResult:
            self.counter.total += request.amount
            return CqResult(total=self.counter.total)

    def cq_event_handler(index: int) -> type:
        class CqOnAdded(cqrs.EventHandler[CqAdded]):
            def __init__(self, counter: Counter) -> None:
                self.counter = counter

            async def handle(self, event: CqAdded) -> None:
                self.counter.total += event.amount

        CqOnAdded.__qualname__ = f"CqOnAdded{index}"
        return CqOnAdded

    cq_handlers = [cq_event_handler(i) for i in range(3)]
    provider = Provider(scope=Scope.REQUEST)
    provider.provide(Counter)
    provider.provide(CqAddHandler)
    for handler in cq_handlers:
        provider.provide(handler)
    container = DishkaCQRSContainer(make_async_container(provider))

    def commands(mapper: Any) -> None:
        mapper.bind(CqAdd, CqAddHandler)

    def events(mapper: Any) -> None:
        for handler in cq_handlers:
            mapper.bind(CqAdded, handler)

    requests = cqrs_requests.bootstrap(
        di_container=container, commands_mapper=commands, scope_strategy=ScopeStrategy.SEND
    )
    event_mediator = cqrs_events.bootstrap(
        di_container=container, events_mapper=events, scope_strategy=ScopeStrategy.SEND
    )
    send = Contender(
        "python-cqrs 5.3",
        _loop(lambda: requests.send(CqAdd(amount=1))),
        "Dishka adapter, ScopeStrategy.SEND",
    )
    publish = Contender(
        "python-cqrs 5.3",
        _loop(lambda: event_mediator.send(CqAdded(amount=1))),
        "EventMediator, ScopeStrategy.SEND",
    )
    return send, publish


def _python_cq_available() -> bool:
    return _available("cq") and _available("injection")


_PYTHON_CQ_MISSING = (
    "python-cq: not measured — it needs Python ≥ 3.12 and its `injection` extra "
    "(python-injection) in this environment"
)


def _python_cq_contenders() -> tuple[Contender, Contender]:
    from cq import command_handler, event_handler, new_command_bus, new_event_bus
    from cq.ext.injection import CQScope
    from injection import adefine_scope, scoped

    # The command bus opens CQScope.COMMAND_DISPATCH per dispatch; the event bus has no scope
    # of its own, so publish opens this one. ``Counter`` lives in whichever of the two is open.
    publish_scope = "dockyard_bench_publish"
    scoped(CQScope.COMMAND_DISPATCH, publish_scope)(Counter)

    @dataclass(frozen=True, slots=True, kw_only=True)
    class PqAdd:
        amount: int

    @dataclass(frozen=True, slots=True, kw_only=True)
    class PqAdded:
        amount: int

    @command_handler(PqAdd)
    class PqAddHandler:
        def __init__(self, counter: Counter) -> None:
            self.counter = counter

        async def handle(self, command: PqAdd) -> int:
            self.counter.total += command.amount
            return self.counter.total

    def pq_event_handler(index: int) -> type:
        class PqOnAdded:
            def __init__(self, counter: Counter) -> None:
                self.counter = counter

            async def handle(self, event: PqAdded) -> None:
                self.counter.total += event.amount

        PqOnAdded.__qualname__ = PqOnAdded.__name__ = f"PqOnAdded{index}"
        return event_handler(PqAdded)(PqOnAdded)

    for i in range(3):
        pq_event_handler(i)
    command_bus = new_command_bus()
    event_bus = new_event_bus()

    async def publish() -> None:
        async with adefine_scope(publish_scope):
            await event_bus.dispatch(PqAdded(amount=1))

    send = Contender(
        "python-cq 0.25",
        _loop(lambda: command_bus.dispatch(PqAdd(amount=1))),
        "new_command_bus(); its middleware opens a python-injection scope per dispatch",
    )
    publish_contender = Contender(
        "python-cq 0.25",
        _loop(publish),
        "adefine_scope + new_event_bus() dispatch; handlers run as 3 concurrent anyio tasks",
    )
    return send, publish_contender


@dataclass(frozen=True, slots=True)
class WakuRig:
    app: Any
    send: Callable[[], Awaitable[None]]
    publish: Callable[[int], Awaitable[None]]


async def _waku_rig() -> WakuRig:
    import waku
    from waku.di import scoped as waku_scoped
    from waku.messaging import EventHandler as WkEventHandler
    from waku.messaging import IEvent, IMessageBus, IRequest, MessagingExtension, MessagingModule
    from waku.messaging import RequestHandler as WkRequestHandler

    handled: list[int] = []

    @dataclass(frozen=True, kw_only=True)
    class WkAdd(IRequest[int]):
        amount: int

    @dataclass(frozen=True, kw_only=True)
    class WkAdded(IEvent):
        amount: int

    class WkAddHandler(WkRequestHandler[WkAdd, int]):
        def __init__(self, counter: Counter) -> None:
            self.counter = counter

        async def handle(self, request: WkAdd, /) -> int:
            self.counter.total += request.amount
            return self.counter.total

    def wk_event_handler(index: int) -> type:
        class WkOnAdded(WkEventHandler[WkAdded]):
            def __init__(self, counter: Counter) -> None:
                self.counter = counter

            async def handle(self, message: WkAdded, /) -> None:
                self.counter.total += message.amount
                handled.append(1)

        WkOnAdded.__qualname__ = f"WkOnAdded{index}"
        return WkOnAdded

    extension = MessagingExtension().bind(WkAdd, WkAddHandler)
    extension.bind(WkAdded, *(wk_event_handler(i) for i in range(3)))

    @waku.module(providers=[waku_scoped(Counter)], extensions=[extension])
    class WkFeature: ...

    @waku.module(imports=[WkFeature, MessagingModule.register()])
    class WkRoot: ...

    app = waku.WakuFactory(WkRoot).create()
    await app.__aenter__()

    async def send() -> None:
        async with app.container() as scope:
            bus = await scope.get(IMessageBus)
            await bus.invoke(WkAdd(amount=1))

    async def publish(n: int) -> None:
        target = len(handled) + 3 * n
        for _ in range(n):
            async with app.container() as scope:
                bus = await scope.get(IMessageBus)
                await bus.publish(WkAdded(amount=1))
        # The local endpoint drains its queue in a worker task; polling adds least to its row.
        while len(handled) < target:  # noqa: ASYNC110
            await asyncio.sleep(0)

    return WakuRig(app, send, publish)


async def bench_send_new_scope(
    app: App, cqrs_send: Contender | None, waku: WakuRig | None, cq_send: Contender | None
) -> None:
    container = _dishka()

    async def dishka_send(n: int) -> None:
        for _ in range(n):
            async with container() as scope:
                handler = await scope.get(AddHandler)
                await handler.handle(Add(amount=1))

    contenders = [
        Contender("dishka alone", dishka_send, "open scope + get handler + handle"),
        Contender("dockyard", _loop(lambda: app.send(Add(amount=1))), "app.send(cmd)"),
    ]
    if cqrs_send is not None:
        contenders.append(cqrs_send)
    if waku is not None:
        contenders.append(Contender("waku 0.43", _loop(waku.send), "scope + bus.invoke"))
    if _available("mediatr"):
        from mediatr import Mediator

        class MtAdd:
            def __init__(self, amount: int) -> None:
                self.amount = amount

        class MtAddHandler:
            def __init__(self, counter: Counter) -> None:
                self.counter = counter

            async def handle(self, request: MtAdd) -> int:
                self.counter.total += request.amount
                return self.counter.total

        Mediator.register_handler(MtAddHandler)
        mediator = Mediator(handler_class_manager=lambda cls, is_behavior=False: cls(Counter()))
        contenders.append(
            Contender(
                "mediatr 1.3",
                _loop(lambda: mediator.send_async(MtAdd(1))),
                "no container: handler built by hand",
            )
        )
    if cq_send is not None:
        contenders.append(cq_send)
    results = await run_async(contenders, n=N)
    print_table(
        Scenario(
            "send, new scope, handler with one scoped dependency",
            baseline="dishka alone",
            target="dockyard ≤ 1.25× dishka alone; ≥ 3× faster than python-cqrs, ≥ 10× than waku",
        ),
        results,
    )
    if cq_send is None:
        print(_PYTHON_CQ_MISSING)
    await container.close()


async def bench_send_in_scope(app: App) -> None:
    async with app.scope() as scope:
        sender = await scope.get(ISender)
        handler = await scope.get(AddHandler, component=app.graph.root.component)
        command = Add(amount=1)

        async def direct(n: int) -> None:
            for _ in range(n):
                await handler.handle(command)

        async def via_sender(n: int) -> None:
            for _ in range(n):
                await sender.send(command)

        results = await run_async(
            [
                Contender("direct call", direct, "await handler.handle(cmd)"),
                Contender("dockyard", via_sender, "await sender.send(cmd), ISender from the scope"),
            ],
            n=N * 5,
        )
    print_table(
        Scenario(
            "send inside an already open scope",
            baseline="direct call",
            target="dockyard ≤ 2× direct call",
        ),
        results,
    )
    print(
        "python-cq: no equivalent — its command bus opens its own CQScope.COMMAND_DISPATCH scope "
        "per dispatch and raises ScopeAlreadyDefinedError when one is already open"
    )


async def bench_publish(
    app: App, cqrs_publish: Contender | None, waku: WakuRig | None, cq_publish: Contender | None
) -> None:
    container = _dishka()

    async def dishka_publish(n: int) -> None:
        event = Added(amount=1)
        for _ in range(n):
            async with container() as scope:
                for handler_type in EVENT_HANDLERS:
                    handler = await scope.get(handler_type)
                    await handler.handle(event)

    contenders = [
        Contender("dishka alone", dishka_publish, "open scope + get 3 handlers + handle each"),
        Contender("dockyard", _loop(lambda: app.publish(Added(amount=1))), "app.publish(event)"),
    ]
    if cqrs_publish is not None:
        contenders.append(cqrs_publish)
    if waku is not None:
        contenders.append(
            Contender(
                "waku 0.43",
                waku.publish,
                "publish queues to a local endpoint; timed until all handlers ran",
            )
        )
    if cq_publish is not None:
        contenders.append(cq_publish)
    results = await run_async(contenders, n=N)
    print_table(
        Scenario(
            "publish one event to 3 handlers, each with one scoped dependency, new scope",
            baseline="dishka alone",
            target="dockyard ≤ 1.25× dishka alone",
        ),
        results,
    )
    if cq_publish is None:
        print(_PYTHON_CQ_MISSING)
    await container.close()


async def main() -> None:
    app = App.build(BenchModule)
    await app.start()
    cqrs_send = cqrs_publish = None
    if _available("cqrs"):
        cqrs_send, cqrs_publish = _cqrs_contenders()
    waku = await _waku_rig() if _available("waku") else None
    cq_send = cq_publish = None
    if _python_cq_available():
        cq_send, cq_publish = _python_cq_contenders()
    if not (_available("cqrs") and _available("waku")):
        print("\n(peers missing: run `make bench ARGS=messaging` for their rows)")
    try:
        await bench_send_new_scope(app, cqrs_send, waku, cq_send)
        await bench_send_in_scope(app)
        await bench_publish(app, cqrs_publish, waku, cq_publish)
    finally:
        await app.stop()
        if waku is not None:
            await waku.app.__aexit__(None, None, None)
