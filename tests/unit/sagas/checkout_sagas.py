"""A checkout saga and its steps, with a journal that records and fails calls on demand."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard import App, module, object_
from dockyard.modules import DynamicModule, ModuleLike
from dockyard.retry import RetryPolicy
from dockyard.sagas import (
    Saga,
    SagaBackend,
    SagaControl,
    SagaRecord,
    Sagas,
    SagaSettings,
    SagasModule,
    SagaStep,
    SagaStepContext,
    pivot,
    step,
)
from dockyard.serialization import Serializer
from dockyard.sql import SqlSagaBackend
from dockyard.testing.pytest import IsolatedDatabase


@dataclass
class Checkout:
    order_id: str
    amount: int = 10
    done: list[str] = field(default_factory=list)


class StepFailedError(RuntimeError):
    pass


@dataclass
class Journal:
    """What the steps did, in order; ``fail[name] = n`` fails the next ``n`` calls of
    ``name`` (``-1``: all of them)."""

    calls: list[str] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)

    def hit(self, name: str) -> None:
        self.calls.append(name)
        left = self.fail.get(name, 0)
        if left:
            self.fail[name] = left - 1 if left > 0 else left
            raise StepFailedError(f"{name} failed")


class Reserve(SagaStep[Checkout]):
    def __init__(self, journal: Journal, context: SagaStepContext) -> None:
        self._journal = journal
        self._context = context

    async def act(self, state: Checkout) -> None:
        self._journal.keys.append(self._context.idempotency_key)
        self._journal.hit("reserve")
        state.done.append("reserve")

    async def compensate(self, state: Checkout) -> None:
        self._journal.hit("undo reserve")
        state.done.append("undo reserve")


class Charge(SagaStep[Checkout]):
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def act(self, state: Checkout) -> None:
        state.done.append("charge (not kept if it fails)")
        self._journal.hit("charge")
        state.done[-1] = "charge"

    async def compensate(self, state: Checkout) -> None:
        self._journal.hit("undo charge")
        state.done.append("undo charge")


class ChargeBackup(SagaStep[Checkout]):
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def act(self, state: Checkout) -> None:
        self._journal.hit("charge-backup")
        state.done.append("charge-backup")

    async def compensate(self, state: Checkout) -> None:
        self._journal.hit("undo charge-backup")
        state.done.append("undo charge-backup")


class Ship(SagaStep[Checkout]):
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def act(self, state: Checkout) -> None:
        self._journal.hit("ship")
        state.done.append("ship")


class Notify(SagaStep[Checkout]):
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def act(self, state: Checkout) -> None:
        self._journal.hit("notify")
        state.done.append("notify")


NO_WAIT = RetryPolicy(max_attempts=2, initial_delay=0.0, jitter=False)
"""Two attempts, the retry due at once: ``run_due`` goes through the whole failure path."""


def checkout_saga(version: int = 1, *, compatible_with: Iterable[int] = ()) -> Saga[Checkout]:
    return Saga(
        "checkout",
        version=version,
        state=Checkout,
        steps=[
            step("reserve", Reserve),
            step("charge", Charge, fallback=step("charge-backup", ChargeBackup)),
            pivot("ship", Ship),
            step("notify", Notify),
        ],
        compatible_with=compatible_with,
    )


CHECKOUT = checkout_saga()


def sql_module(isolated: IsolatedDatabase) -> DynamicModule:
    """``SqlModule`` on the test's database, with a small pool (the server is shared)."""
    if isolated.schema is None:  # SQLite
        return isolated.sql_module()
    return isolated.sql_module(pool_size=3, max_overflow=2)


def build(
    journal: Journal,
    sagas: Sequence[Saga[Any]] = (CHECKOUT,),
    *,
    backend: SagaBackend | None = None,
    sql: DynamicModule | None = None,
    settings: SagaSettings | None = None,
    serializer: Serializer | None = None,
) -> App:
    """An app running ``sagas``: on ``backend`` (in memory by default), or with ``sql`` (an
    ``SqlModule`` registration) on ``SqlSagaBackend``."""
    imports: list[ModuleLike] = []
    if sql is not None:
        imports.append(sql)
        backend = SqlSagaBackend()

    @module(providers=[object_(journal, provides=Journal)], exports=[Journal])
    class Shop: ...

    registered = SagasModule.register(
        sagas=sagas,
        backend=backend,
        imports=[Shop, *imports],
        settings=settings
        or SagaSettings(retry=NO_WAIT, compensation_retry=NO_WAIT, max_poll_interval=0.02),
        serializer=serializer,
    )

    @module(imports=[Shop, registered, *imports])
    class Root: ...

    return App.build(Root)


async def start(app: App, saga: Saga[Checkout], order_id: str) -> None:
    async with app.scope() as scope:
        sagas = await scope.get(Sagas)
        await sagas.start(saga, Checkout(order_id), saga_id=order_id)


async def run(app: App, saga: Saga[Checkout], order_id: str) -> SagaRecord:
    """Start ``order_id`` and run it (and anything else due) until nothing is due."""
    await start(app, saga, order_id)
    control = await app.get(SagaControl)
    await control.run_due()
    return await control.get(order_id)
