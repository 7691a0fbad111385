"""Building and running apps from modules: visibility, providers, lifecycle."""

# No `from __future__ import annotations`: classes defined inside tests must be resolvable.

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import pytest
from dishka.exceptions import NoFactoryError

from dockyard import (
    App,
    DynamicModule,
    contextual,
    many,
    module,
    object_,
    scoped,
    singleton,
    transient,
)
from dockyard.di import Lifetime
from dockyard.exceptions import (
    AppNotStartedError,
    MissingProviderError,
    ModuleConfigurationError,
    NotExportedError,
)
from dockyard.modules import (
    BackgroundService,
    ModuleNode,
    OnAppInit,
    OnAppShutdown,
    OnModuleDestroy,
    OnModuleInit,
    ProvidesBackgroundServices,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    url: str


class Repository(Generic[T]):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


class Order:
    pass


class OrderService:
    def __init__(self, *, orders: Repository[Order]) -> None:
        self.orders = orders


@module()
class DatabaseModule:
    @classmethod
    def register(cls, url: str) -> DynamicModule:
        return DynamicModule(
            cls, providers=[object_(Settings(url))], exports=[Settings], settings=url
        )


@module(
    providers=[scoped(Repository[Order], Repository[Order])],
    imports=[DatabaseModule],
    exports=[Repository[Order], DatabaseModule],
)
class PersistenceModule: ...


@module(providers=[scoped(OrderService)], imports=[PersistenceModule], exports=[OrderService])
class OrdersModule: ...


@module(imports=[OrdersModule, DatabaseModule.register("sqlite:///shop.db")])
class Root: ...


async def test_generic_keyword_only_dependency_across_dynamic_module() -> None:
    async with App.build(Root) as app, app.scope() as scope:
        service = await scope.get(OrderService)
        assert service.orders.settings == Settings("sqlite:///shop.db")


async def test_boundaries_hold_when_resolving_at_run_time() -> None:
    async with App.build(Root) as app, app.scope() as scope:
        # Root sees OrdersModule's exports only; the repository stays inside, and the error
        # says where it is and what to export (not Dishka's bare NoFactoryError).
        with pytest.raises(NotExportedError) as raised:
            await scope.get(Repository[Order])
        assert str(raised.value) == (
            "Module `Root` needs `Repository[Order]` (for `scope.get(...)` on the app), "
            "provided by `PersistenceModule`, which `Root` does not import. "
            "Hint: add `PersistenceModule` to `Root` imports."
        )
        with pytest.raises(NotExportedError):  # outside a scope too
            await app.container.get(Repository[Order])


async def test_resolving_a_type_no_module_provides_is_still_dishkas_error() -> None:
    class Unknown: ...

    async with App.build(Root) as app, app.scope() as scope:
        with pytest.raises(NoFactoryError):
            await scope.get(Unknown)


def test_reexported_module_is_visible_to_importers() -> None:
    class Reporting:
        def __init__(self, settings: Settings) -> None:
            self.settings = settings

    @module(providers=[scoped(Reporting)], imports=[PersistenceModule])
    class ReportingModule: ...

    # Settings reaches ReportingModule through PersistenceModule re-exporting DatabaseModule.
    @module(imports=[ReportingModule, DatabaseModule.register("x")])
    class App2: ...

    App.build(App2)


def test_plain_module_without_registration_provides_nothing_extra() -> None:
    @module(imports=[OrdersModule])
    class Unconfigured: ...

    with pytest.raises(ModuleConfigurationError) as info:
        App.build(Unconfigured)
    (problem,) = info.value.problems
    assert isinstance(problem, MissingProviderError)
    assert problem.dependency is Settings


async def test_global_module_exports_are_visible_without_import() -> None:
    class Clock:
        pass

    class Secret:
        pass

    class Stamp:
        def __init__(self, clock: Clock) -> None:
            self.clock = clock

    @module(providers=[singleton(Clock), singleton(Secret)], exports=[Clock], is_global=True)
    class Infra: ...

    @module(providers=[scoped(Stamp)], exports=[Stamp])
    class Feature: ...

    @module(imports=[Infra, Feature])
    class Root2: ...

    async with App.build(Root2) as app, app.scope() as scope:
        assert isinstance((await scope.get(Stamp)).clock, Clock)

    class Leaky:
        def __init__(self, secret: Secret) -> None:
            self.secret = secret

    @module(providers=[scoped(Leaky)])
    class Feature2: ...

    @module(imports=[Infra, Feature2])
    class Root3: ...

    with pytest.raises(ModuleConfigurationError) as info:
        App.build(Root3)
    (problem,) = info.value.problems
    assert isinstance(problem, NotExportedError)
    assert problem.provider_module == "Infra"


class Plugin:
    pass


class Audit(Plugin):
    pass


class Metrics(Plugin):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


class RequestUser:
    def __init__(self, name: str) -> None:
        self.name = name


class Greeter:
    def __init__(self, user: RequestUser, plugins: Sequence[Plugin]) -> None:
        self.user = user
        self.plugins = plugins


async def test_contextual_many_transient_and_when() -> None:
    class Counter:
        made = 0

        def __init__(self) -> None:
            Counter.made += 1

    @module(
        providers=[
            contextual(RequestUser),
            many(Plugin, Audit),
            many(Plugin, Metrics),
            scoped(Greeter),
            transient(Counter),
            singleton(Audit, when=False),
        ],
        imports=[DatabaseModule.register("db")],
        exports=[Greeter, Counter],
    )
    class Feature: ...

    app = App.build(Feature)
    async with app, app.scope(context={RequestUser: RequestUser("ada")}) as scope:
        greeter = await scope.get(Greeter)
        assert greeter.user.name == "ada"
        assert [type(p) for p in greeter.plugins] == [Audit, Metrics]
        await scope.get(Counter)
        await scope.get(Counter)
        assert Counter.made == 2


def test_when_accepts_a_callable_evaluated_at_build() -> None:
    calls: list[bool] = []

    def use_fake() -> bool:
        calls.append(True)
        return False

    @module(providers=[singleton(Audit, when=use_fake)], exports=[])
    class Feature: ...

    app = App.build(Feature)
    assert calls == [True]
    assert app.modules[0].provided == {}


async def test_app_wide_context_value() -> None:
    @module(providers=[contextual(Settings, lifetime=Lifetime.SINGLETON)], exports=[Settings])
    class Configured: ...

    async with App.build(Configured, context={Settings: Settings("env")}) as app:
        assert await app.get(Settings) == Settings("env")


async def test_lifecycle_order_hooks_and_lifespans() -> None:
    events: list[str] = []

    class Hooks(OnModuleInit, OnModuleDestroy, OnAppInit, OnAppShutdown):
        def __init__(self, tag: str) -> None:
            self.tag = tag

        async def on_module_init(self, app: App, module: ModuleNode) -> None:
            events.append(f"init {self.tag}:{module.name.rsplit('.', 1)[-1]}")

        async def on_module_destroy(self, app: App, module: ModuleNode) -> None:
            events.append(f"destroy {self.tag}")

        async def on_app_init(self, app: App) -> None:
            events.append(f"app init {self.tag}")

        async def on_app_shutdown(self, app: App) -> None:
            events.append(f"app shutdown {self.tag}")

    @module(extensions=[Hooks("db")])
    class Db: ...

    @module(imports=[Db], extensions=[Hooks("orders")])
    class Orders: ...

    @module(imports=[Orders, Db], extensions=[Hooks("root")])
    class Root4: ...

    @asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[None]:
        events.append("lifespan enter")
        yield
        events.append("lifespan exit")

    app = App.build(Root4, lifespan=[lifespan])
    started: list[bool] = []
    async with app:
        started.append(app.is_started)
        events.append("running")
    started.append(app.is_started)
    assert started == [True, False]
    assert events == [
        "lifespan enter",
        "init db:Db",
        "init orders:Orders",
        "init root:Root4",
        "app init db",
        "app init orders",
        "app init root",
        "running",
        "app shutdown root",
        "app shutdown orders",
        "app shutdown db",
        "destroy root",
        "destroy orders",
        "destroy db",
        "lifespan exit",
    ]


async def test_scoped_generator_factories_are_finalised_per_scope() -> None:
    closed: list[str] = []

    class Connection:
        pass

    def connect() -> Iterator[Connection]:
        yield Connection()
        closed.append("scope")

    @module(providers=[scoped(connect)], exports=[Connection])
    class Db: ...

    async with App.build(Db) as app:
        async with app.scope() as scope:
            first = await scope.get(Connection)
            assert first is await scope.get(Connection)
        assert closed == ["scope"]
        async with app.scope() as scope:
            assert await scope.get(Connection) is not first


async def test_app_must_be_started_to_open_a_scope() -> None:
    app = App.build(Root)
    with pytest.raises(AppNotStartedError, match=r"Cannot open a scope before the app has "):
        app.scope()
    async with app:
        pass
    # The app can start again after a stop, with fresh singletons.
    async with app, app.scope() as scope:
        await scope.get(OrderService)


def test_module_graph_is_data() -> None:
    app = App.build(Root)
    names = [m.name for m in app.modules]
    assert names == ["DatabaseModule", "PersistenceModule", "OrdersModule", "Root"]
    persistence = app.graph.get(PersistenceModule)
    assert [m.name for m in persistence.imports] == ["DatabaseModule"]
    assert persistence.exported == frozenset({Repository[Order], Settings})
    assert set(persistence.provided) == {Repository[Order]}
    assert app.graph.root.name == "Root"


async def test_two_modules_may_each_keep_a_private_type_of_the_same_name() -> None:
    class Client:
        def __init__(self, settings: Settings) -> None:
            self.settings = settings

    class Mail(Client):
        pass

    class Sms(Client):
        pass

    @module(providers=[object_(Settings("smtp://")), singleton(Mail)], exports=[Mail])
    class MailModule: ...

    @module(providers=[object_(Settings("sms://")), singleton(Sms)], exports=[Sms])
    class SmsModule: ...

    @module(imports=[MailModule, SmsModule])
    class Root5: ...

    app = App.build(Root5)
    # Each module that touches the ambiguous type gets its own Dishka component.
    assert app.graph.get(MailModule).component != app.graph.get(SmsModule).component
    async with app:
        assert (await app.get(Mail)).settings.url == "smtp://"
        assert (await app.get(Sms)).settings.url == "sms://"


def test_background_services_are_collected_from_extensions() -> None:
    class Ticker:
        name = "ticker"

        async def run(self, stop: asyncio.Event) -> None:
            await stop.wait()

    ticker = Ticker()

    class Contributes(ProvidesBackgroundServices):
        def background_services(self, app: App) -> Sequence[BackgroundService]:
            return [ticker]

    @module(extensions=[Contributes()])
    class Jobs: ...

    @module(imports=[Jobs])
    class Root6: ...

    assert App.build(Root6).background_services() == [ticker]


async def test_hooks_may_resolve_while_the_app_starts_and_a_failed_start_cleans_up() -> None:
    seen: list[str] = []

    class ReadsSettings(OnAppInit):
        async def on_app_init(self, app: App) -> None:
            seen.append((await app.get(Settings)).url)
            async with app.scope():
                pass

    @module(providers=[object_(Settings("db"))], exports=[Settings], extensions=[ReadsSettings()])
    class Configured: ...

    async with App.build(Configured):
        assert seen == ["db"]

    class Fails(OnAppInit):
        async def on_app_init(self, app: App) -> None:
            raise RuntimeError("boom")

    @module(extensions=[Fails()])
    class Broken: ...

    app = App.build(Broken)
    with pytest.raises(RuntimeError, match="boom"):
        await app.start()
    assert not app.is_started
    with pytest.raises(AppNotStartedError):
        app.scope()
