"""Module system at scale: build 200 modules × 5 providers, then resolve from a fresh scope.

Contenders, all in one process run, over the very same service classes:

* raw Dishka — the same 1,000 factories in one plain ``Provider`` per module, one
  ``make_async_container`` (no boundaries at all);
* dockyard — ``App.build(Root)``: graph, boundary checks, one Dishka component per module
  joined by uncached aliases, one container;
* waku 0.43 — ``WakuFactory(Root).create()``. waku analyses factories when ``waku.scoped(...)``
  runs (at import), and checks module boundaries only in ``after_app_init`` (on
  ``async with app``), so extra rows show those costs too.

The shape: module ``i`` imports module ``i - 1`` and up to two more of the 20 before it. It
provides a singleton client ``C`` (uses the previous module's client, in chains of 8), and scoped
``S`` (session) → ``R`` (repository) → ``V`` (service, also uses the imports' repositories)
→ ``U`` (use case). It exports ``C`` and ``R``. The last module is the root; the service
resolved is its use case, which builds a handful of scoped objects, several across modules.
Client chains stay short on purpose: Dishka compiles a getter recursively on the first
``get``, and each cross-module alias adds a level, so a dockyard chain of ~160 modules
(~320 in raw Dishka) exceeds Python's default recursion limit.

A third table measures one cross-module hop in dockyard: a scoped service whose dependency
lives in an imported module against the same service with the dependency in its own module.
"""

from __future__ import annotations

import dataclasses
import gc
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dishka import AsyncContainer, Provider, Scope, make_async_container

from bench._harness import Contender, Result, Scenario, print_table, run_async
from dockyard.app import App
from dockyard.di import scoped, singleton
from dockyard.modules import module

MODULES = 200
LOCALITY = 20
"""Extra imports are drawn from the modules just before (features depend on their neighbours)."""
SEED = 20_240_601
CHAIN = 8
HOPS = 10


@dataclass(frozen=True, slots=True)
class Feature:
    """The classes of one module and the indexes of the modules it imports."""

    index: int
    imports: tuple[int, ...]
    client: type
    """Singleton; depends on the previous module's client (chains of CHAIN). Exported."""
    session: type
    """Scoped; depends on the client."""
    repository: type
    """Scoped; depends on the session and the client. Exported."""
    service: type
    """Scoped; depends on the repository and on the imported modules' repositories."""
    use_case: type
    """Scoped; depends on the service and on the first import's client."""

    @property
    def singletons(self) -> tuple[type, ...]:
        return (self.client,)

    @property
    def scoped(self) -> tuple[type, ...]:
        return (self.session, self.repository, self.service, self.use_case)

    @property
    def exports(self) -> tuple[type, ...]:
        return (self.client, self.repository)


def _service_class(name: str, deps: list[type]) -> type:
    fields = [(f"d{k}", dep) for k, dep in enumerate(deps)]
    return dataclasses.make_dataclass(name, fields, slots=True, module=__name__)


def make_features(count: int = MODULES) -> list[Feature]:
    rng = random.Random(SEED)
    features: list[Feature] = []
    for i in range(count):
        imports: tuple[int, ...] = ()
        if i > 0:
            window = range(max(0, i - LOCALITY), i - 1)
            extra = rng.sample(window, min(len(window), rng.randint(0, 2)))
            imports = (i - 1, *sorted(extra, reverse=True))
        deps = [features[j] for j in imports]
        # Clients form short chains (infrastructure is shallow): a client uses the previous
        # module's client except at every CHAIN-th module.
        client = _service_class(f"Client{i}", [deps[0].client] if i % CHAIN else [])
        session = _service_class(f"Session{i}", [client])
        repository = _service_class(f"Repository{i}", [session, client])
        service = _service_class(f"Service{i}", [repository, *(d.repository for d in deps)])
        use_case = _service_class(f"UseCase{i}", [service, *(d.client for d in deps[:1])])
        features.append(Feature(i, imports, client, session, repository, service, use_case))
    return features


# -- raw Dishka ---------------------------------------------------------------------------


def dishka_providers(features: list[Feature]) -> list[Provider]:
    providers = []
    for f in features:
        provider = Provider()
        for cls in f.singletons:
            provider.provide(cls, scope=Scope.APP)
        for cls in f.scoped:
            provider.provide(cls, scope=Scope.REQUEST)
        providers.append(provider)
    return providers


def build_dishka(features: list[Feature]) -> AsyncContainer:
    return make_async_container(*dishka_providers(features))


# -- dockyard -----------------------------------------------------------------------------


def dockyard_root(features: list[Feature], prefix: str = "Dy") -> type:
    """Declare the modules (fresh classes each call); the last one is the root."""
    classes: list[type] = []
    for f in features:
        cls = type(f"{prefix}Module{f.index}", (), {"__module__": __name__})
        decorate = module(
            providers=[
                *(singleton(c) for c in f.singletons),
                *(scoped(c) for c in f.scoped),
            ],
            imports=[classes[j] for j in f.imports],
            exports=f.exports,
        )
        classes.append(decorate(cls))
    return classes[-1]


# -- waku ---------------------------------------------------------------------------------


def waku_root(features: list[Feature], prefix: str = "Waku") -> type:
    import waku
    from waku.di import scoped as waku_scoped
    from waku.di import singleton as waku_singleton

    classes: list[type] = []
    for f in features:
        cls = type(f"{prefix}Module{f.index}", (), {"__module__": __name__})
        decorate = waku.module(
            providers=[
                *(waku_singleton(c) for c in f.singletons),
                *(waku_scoped(c) for c in f.scoped),
            ],
            imports=[classes[j] for j in f.imports],
            exports=list(f.exports),
        )
        classes.append(decorate(cls))
    return classes[-1]


def waku_create(root: type) -> Any:
    from waku import WakuFactory

    return WakuFactory(root).create()


# -- scenarios ----------------------------------------------------------------------------


def _loop(fn: Callable[[], object]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            fn()

    return run


def _waku_available() -> bool:
    try:
        import waku  # noqa: F401
    except ImportError:
        return False
    return True


async def bench_build(features: list[Feature], has_waku: bool) -> None:
    dy_root = dockyard_root(features)
    prebuilt = dishka_providers(features)

    contenders = [
        Contender("dishka", _loop(lambda: build_dishka(features)), "Providers + container"),
        Contender(
            "dishka (container only)",
            _loop(lambda: make_async_container(*prebuilt)),
            "Providers made beforehand (info)",
        ),
        Contender("dockyard", _loop(lambda: App.build(dy_root)), "App.build(Root)"),
    ]
    if has_waku:
        wk_root = waku_root(features)

        async def waku_validated(n: int) -> None:
            for _ in range(n):
                app = waku_create(wk_root)
                await app.initialize()  # runs waku's boundary check (DependenciesAccessibleRule)

        contenders += [
            Contender(
                "waku",
                _loop(lambda: waku_create(wk_root)),
                "create(); factories analysed at import",
            ),
            Contender(
                "waku (declare + create)",
                _loop(lambda: waku_create(waku_root(features))),
                "waku.scoped(...) + @module + create()",
            ),
            Contender(
                "waku (create + boundary check)",
                waku_validated,
                "create() + initialize()",
            ),
        ]
    gc.collect()
    results = await run_async(contenders, n=1, rounds=9)
    print_table(
        Scenario(
            f"modules: build an app of {MODULES} modules × 5 providers",
            baseline="dishka",
            target="dockyard ≤ 1.5× dishka, and faster than waku",
        ),
        results,
    )
    _verdict(results)


def _verdict(results: list[Result]) -> None:
    by_name = {r.name: r.per_op_us for r in results}
    dy, base = by_name["dockyard"], by_name["dishka"]
    verdict = "met" if dy <= 1.5 * base else "MISSED"
    print(f"dockyard / dishka = {dy / base:.2f}× (≤ 1.5×: {verdict})")
    for name in ("waku", "waku (declare + create)", "waku (create + boundary check)"):
        if name in by_name:
            faster = "faster" if dy < by_name[name] else "SLOWER"
            print(f"dockyard / {name} = {dy / by_name[name]:.2f}× ({faster})")


async def bench_resolve(features: list[Feature], has_waku: bool) -> None:
    entry = features[-1].use_case
    container = build_dishka(features)
    app = App.build(dockyard_root(features))
    await app.start()

    async def dishka_resolve(n: int) -> None:
        for _ in range(n):
            async with container() as scope:
                await scope.get(entry)

    async def dockyard_resolve(n: int) -> None:
        for _ in range(n):
            async with app.scope() as scope:
                await scope.get(entry)

    contenders = [
        Contender("dishka", dishka_resolve),
        Contender("dockyard", dockyard_resolve, "app.scope()"),
    ]
    waku_app: Any = None
    if has_waku:
        waku_app = waku_create(waku_root(features))
        await waku_app.__aenter__()

        async def waku_resolve(n: int) -> None:
            for _ in range(n):
                async with waku_app.container() as scope:
                    await scope.get(entry)

        contenders.append(Contender("waku", waku_resolve, "app.container()"))

    try:
        results = await run_async(contenders, n=1_000, rounds=7)
    finally:
        await app.stop()
        await container.close()
        if waku_app is not None:
            await waku_app.__aexit__(None, None, None)
    print_table(
        Scenario(
            f"modules: resolve the root use case from a fresh scope ({_objects(features)} "
            "scoped objects)",
            baseline="dishka",
        ),
        results,
    )


def _objects(features: list[Feature]) -> int:
    root = features[-1]
    return 4 + 2 * len(root.imports)  # root: S R V U; each import: S R


# -- the cross-module hop -----------------------------------------------------------------


def _hop_apps() -> list[tuple[str, App, type]]:
    """Small dockyard apps resolving the same scoped service, with and without hops."""
    dep = _service_class("HopDep", [])
    svc = _service_class("HopService", [dep])

    local_root = module(providers=[scoped(dep), scoped(svc)])(
        type("HopLocalRoot", (), {"__module__": __name__})
    )
    dep_module = module(providers=[scoped(dep)], exports=[dep])(
        type("HopDepModule", (), {"__module__": __name__})
    )
    cross_root = module(providers=[scoped(svc)], imports=[dep_module])(
        type("HopCrossRoot", (), {"__module__": __name__})
    )

    # A chain of HOPS + 1 scoped classes: all in one module, or one per module.
    chain = [_service_class("Link0", [])]
    for k in range(1, HOPS + 1):
        chain.append(_service_class(f"Link{k}", [chain[-1]]))
    chain_local = module(providers=[scoped(c) for c in chain])(
        type("ChainLocalRoot", (), {"__module__": __name__})
    )
    previous: list[type] = []
    for k, cls in enumerate(chain):
        mod = module(providers=[scoped(cls)], imports=previous, exports=[cls])(
            type(f"ChainModule{k}", (), {"__module__": __name__})
        )
        previous = [mod]
    chain_cross = previous[0]

    return [
        ("1 dep, own module", App.build(local_root), svc),
        ("1 dep, imported module", App.build(cross_root), svc),
        (f"{HOPS}-link chain, one module", App.build(chain_local), chain[-1]),
        (f"{HOPS}-link chain, {HOPS + 1} modules", App.build(chain_cross), chain[-1]),
    ]


async def bench_hop() -> None:
    apps = _hop_apps()
    contenders = []
    for name, app, entry in apps:
        await app.start()

        async def resolve(n: int, app: App = app, entry: type = entry) -> None:
            for _ in range(n):
                async with app.scope() as scope:
                    await scope.get(entry)

        contenders.append(Contender(name, resolve))
    try:
        results = await run_async(contenders, n=5_000, rounds=7)
    finally:
        for _, app, _ in apps:
            await app.stop()
    print_table(
        Scenario(
            "modules: one cross-module hop in dockyard (fresh scope, resolve a scoped service)",
            baseline="1 dep, own module",
        ),
        results,
    )
    us = {r.name: r.per_op_us for r in results}
    one = us["1 dep, imported module"] - us["1 dep, own module"]
    per_hop = (
        us[f"{HOPS}-link chain, {HOPS + 1} modules"] - us[f"{HOPS}-link chain, one module"]
    ) / HOPS
    print(f"one hop ≈ {one:.2f} µs (1-dep pair); ≈ {per_hop:.2f} µs per hop ({HOPS}-link chains)")
    print(
        "(Dishka compiles an uncached alias to its source's getter, so a hop should cost ~0 "
        "at resolve time; it costs at build time instead: registry entries and compile depth.)"
    )


async def main() -> None:
    started = time.perf_counter()
    features = make_features()
    has_waku = _waku_available()
    if not has_waku:
        print("\n(waku is not installed: run `make bench ARGS=modules` for the peer rows)")
    await bench_build(features, has_waku)
    await bench_resolve(features, has_waku)
    await bench_hop()
    print(f"\n(modules scenario took {time.perf_counter() - started:.1f} s)")
