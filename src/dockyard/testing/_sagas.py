"""A saga harness: run an app's sagas in a test on a fake clock, fail steps on demand, and
state what should come of it, given/when/then.

Retries wait for a due time the store keeps; here that time is a ``FakeClock``'s, so a test
moves the clock instead of sleeping, and ``settle()`` jumps it to each next due time.
"""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from dockyard.app import App
from dockyard.di import ProviderSpec, object_, scoped
from dockyard.modules import ModuleLike
from dockyard.sagas._control import SagaControl
from dockyard.sagas._definition import Saga
from dockyard.sagas._module import registry_of
from dockyard.sagas._record import SagaLogKind, SagaRecord, SagaStatus
from dockyard.sagas._registry import SagaRegistry
from dockyard.sagas._sagas import SagaHandle, Sagas, SagaStepContext
from dockyard.sagas._store import SagaStore, SagaWriter
from dockyard.sagas.memory import InMemorySagaBackend, memory_saga_writer
from dockyard.testing._specs import SpecFailedError

__all__ = ["FakeClock", "InjectedStepError", "SagaHarness", "SagaScenario"]

S = TypeVar("S")

_CONTEXT = "dockyard_saga_step_context"
"""The keyword the scripted handlers' factories take the step's context under."""
_MAX_TURNS = 100_000


class FakeClock:
    """Seconds since the epoch that move only when the test moves them.

    Call it for the time; ``advance`` moves it on. It starts at a fixed moment (2027-01-15),
    so what a test records does not depend on when it runs.
    """

    __slots__ = ("now",)

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, by: float | timedelta) -> None:
        """Move the clock ``by`` seconds (or a ``timedelta``) on; never back."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else by
        if seconds < 0:
            msg = f"a clock does not go back: advance({by!r})"
            raise ValueError(msg)
        self.now += seconds

    def __repr__(self) -> str:
        return f"<FakeClock {self.now}>"


class InjectedStepError(RuntimeError):
    """What a step (or compensation) the harness was told to fail raises."""


@dataclass(slots=True)
class _Fault:
    left: int
    error: BaseException | None


class _Faults:
    """The failures to come, by step name and action (``act`` or ``compensate``)."""

    def __init__(self) -> None:
        self.planned: dict[tuple[str, str], _Fault] = {}
        self.calls: list[tuple[str, str]] = []

    def check(self, step: str, action: str) -> None:
        self.calls.append((step, action))
        fault = self.planned.get((step, action))
        if fault is None or fault.left == 0:
            return
        fault.left -= 1
        if fault.error is not None:
            raise fault.error
        what = "compensation of step" if action == "compensate" else "step"
        msg = f"{what} `{step}` failed (the saga harness made it fail)"
        raise InjectedStepError(msg)


class _Scripted:
    """A step handler that fails when the harness says so, and else is the real one."""

    __slots__ = ("_context", "_faults", "_inner")

    def __init__(self, inner: Any, context: SagaStepContext, faults: _Faults) -> None:
        self._inner = inner
        self._context = context
        self._faults = faults

    async def act(self, state: Any) -> None:
        self._faults.check(self._context.step, "act")
        await self._inner.act(state)

    async def compensate(self, state: Any) -> None:
        self._faults.check(self._context.step, "compensate")
        await self._inner.compensate(state)


def _scripted(handler: type, faults: _Faults) -> Callable[..., Any]:
    """A factory taking what ``handler`` takes (and the step's context), for the container."""
    try:
        hints = typing.get_type_hints(handler.__init__)  # type: ignore[misc]
    except TypeError:  # no __init__ of its own
        hints = {}
    parameters = [
        inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[p.name])
        for p in inspect.signature(handler).parameters.values()
        if p.name in hints
    ]
    parameters.append(
        inspect.Parameter(_CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=SagaStepContext)
    )

    def factory(**dependencies: Any) -> Any:
        context = dependencies.pop(_CONTEXT)
        return _Scripted(handler(**dependencies), context, faults)

    factory.__signature__ = inspect.Signature(parameters, return_annotation=handler)  # type: ignore[attr-defined]
    factory.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": handler}
    factory.__name__ = factory.__qualname__ = f"scripted_{handler.__name__}"
    return factory


class SagaHarness:
    """Runs an app's sagas in a test: on a fake clock, in memory, steps failing on demand.

    Builds ``root`` (the app's root module, with its ``SagasModule``) with the saga store in
    memory on ``clock`` whatever backend the app names, and every step handler wrapped so that
    ``fail(step, times=n)`` makes its next ``n`` attempts raise before it runs. Nothing runs
    on its own: ``run()`` runs what is due now, ``advance(seconds)`` moves the clock and runs
    what came due, ``settle()`` does that until no instance is active.

    Example:
        ```python
        async with SagaHarness(Root) as harness:
            record = await (
                harness.given(checkout, Checkout("o-1"), saga_id="o-1")
                .when_step_fails("charge", times=3)
                .then(status=SagaStatus.COMPENSATED, log=[...])
            )
        ```
    """

    def __init__(
        self,
        root: ModuleLike,
        *,
        clock: FakeClock | None = None,
        overrides: Iterable[ProviderSpec] = (),
        context: Mapping[Any, Any] | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self._root = root
        self._overrides = tuple(overrides)
        self._context = context
        self._faults = _Faults()
        self._stack: AsyncExitStack | None = None
        self._app: App | None = None
        self._registry: SagaRegistry | None = None
        self._control: SagaControl | None = None
        self.backend = InMemorySagaBackend()
        """Where the instances are; ``backend.store`` reads them directly."""
        self.backend.store.clock = self.clock

    # -- the app ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        plain = App.build(self._root, overrides=self._overrides, context=self._context)
        registry = registry_of(plain)
        if registry is None:
            msg = "SagaHarness needs an app with `SagasModule.register(...)` in its modules"
            raise TypeError(msg)
        handlers = dict.fromkeys(h for plan in registry.plans.values() for h in plan.handlers)
        store = self.backend.store

        async def writer() -> AsyncGenerator[SagaWriter, BaseException | None]:
            # the in-memory writer on this store, wherever the app's saga backend put it
            scope = memory_saga_writer(store)
            outcome = yield await anext(scope)
            with contextlib.suppress(StopAsyncIteration):
                await scope.asend(outcome)

        providers = [
            *self._overrides,
            object_(store, provides=SagaStore),
            scoped(SagaWriter, writer),
            *(scoped(handler, _scripted(handler, self._faults)) for handler in handlers),
        ]
        app = App.build(self._root, overrides=providers, context=self._context)
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(app)
            previous = registry.clock
            registry.clock = self.clock
            stack.callback(setattr, registry, "clock", previous)
            self._control = await app.get(SagaControl)
            self._stack = stack.pop_all()
        self._app, self._registry = app, registry
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, traceback)

    @property
    def app(self) -> App:
        """The app under test (started)."""
        if self._app is None:
            msg = "use the harness in `async with SagaHarness(...) as harness:`"
            raise RuntimeError(msg)
        return self._app

    @property
    def control(self) -> SagaControl:
        """The app's ``SagaControl``: ``get``, ``retry``, ``skip``, ``instance_diagram``…"""
        if self._control is None:
            msg = "use the harness in `async with SagaHarness(...) as harness:`"
            raise RuntimeError(msg)
        return self._control

    @property
    def calls(self) -> list[tuple[str, str]]:
        """Every attempt so far, in order: ``(step, "act" | "compensate")``, failed or not."""
        return list(self._faults.calls)

    # -- given, when ------------------------------------------------------------------------

    async def start(self, saga: Saga[S], state: S, /, *, saga_id: str | None = None) -> str:
        """Start an instance in a scope of its own (committed); return its id."""
        async with self.app.scope() as scope:
            handle: SagaHandle = await (await scope.get(Sagas)).start(saga, state, saga_id=saga_id)
        return handle.saga_id

    def fail(
        self,
        step: str,
        *,
        times: int = 1,
        error: BaseException | None = None,
        compensation: bool = False,
    ) -> None:
        """Make the next ``times`` attempts of ``step`` (of any instance) raise ``error`` (an
        ``InjectedStepError`` by default) before the step runs; ``-1``: every attempt.

        Args:
            step: A step (or fallback) name of a registered saga.
            times: How many attempts fail; ``-1`` for all of them, ``0`` for none any more.
            error: What they raise.
            compensation: Fail the step's ``compensate`` instead of its ``act``.

        Raises:
            ValueError: No registered saga has a step of that name.
        """
        registry = self._registry
        if registry is None:
            msg = "use the harness in `async with SagaHarness(...) as harness:`"
            raise RuntimeError(msg)
        known = sorted({n for plan in registry.plans.values() for n in _steps(plan.saga)})
        if step not in known:
            msg = f"no registered saga has a step `{step}`; the steps are: {', '.join(known)}"
            raise ValueError(msg)
        action = "compensate" if compensation else "act"
        self._faults.planned[step, action] = _Fault(times, error)

    def given(self, saga: Saga[S], state: S, /, *, saga_id: str | None = None) -> SagaScenario[S]:
        """A scenario: an instance of ``saga`` started with ``state`` (when ``then`` runs)."""
        return SagaScenario(self, saga, state, saga_id)

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> int:
        """Run what is due now until nothing is; return how many step attempts ran."""
        return await self.control.run_due()

    async def advance(self, by: float | timedelta) -> int:
        """Move the clock on and run what came due; return how many step attempts ran."""
        self.clock.advance(by)
        return await self.run()

    async def settle(self, *, within: float | timedelta = timedelta(days=30)) -> float:
        """Run, and move the clock to each next due time (a retry's), until no instance is
        active; return how many seconds the clock moved.

        Raises:
            SpecFailedError: Instances are still active ``within`` from now on the clock.
        """
        limit = within.total_seconds() if isinstance(within, timedelta) else within
        started = self.clock()
        for _ in range(_MAX_TURNS):
            await self.run()
            due = await self._next_due()
            if due is None:
                return self.clock() - started
            if due - started > limit:
                break
            self.clock.advance(max(due - self.clock(), 0.0))
        msg = f"saga instances are still active {limit} s on: {await self._active_ids()}"
        raise SpecFailedError(msg)

    async def get(self, saga_id: str) -> SagaRecord:
        return await self.control.get(saga_id)

    async def _active(self) -> list[SagaRecord]:
        found: list[SagaRecord] = []
        for status in (SagaStatus.RUNNING, SagaStatus.COMPENSATING):
            after: str | None = None
            while page := await self.control.list(status=status, limit=500, after=after):
                found += page
                after = page[-1].saga_id
        return found

    async def _active_ids(self) -> list[str]:
        return [r.saga_id for r in await self._active()]

    async def _next_due(self) -> float | None:
        """When the next active instance may be claimed (its due time, or its lease's end)."""
        times = [max(r.due_at, r.lease_until or 0.0) for r in await self._active()]
        return min(times, default=None)


def _steps(saga: Saga[Any]) -> list[str]:
    return [b.name for s in saga.steps for b in (s, s.fallback) if b is not None]


LogLine = tuple[str, str | SagaLogKind] | tuple[str, str | SagaLogKind, int]
"""An expected step log entry: ``(step, kind)`` or ``(step, kind, attempt)``."""


class SagaScenario(Generic[S]):
    """Given an instance started with a state, when steps fail, then this status and log."""

    def __init__(self, harness: SagaHarness, saga: Saga[S], state: S, saga_id: str | None) -> None:
        self._harness = harness
        self._saga = saga
        self._state = state
        self._saga_id = saga_id
        self._faults: list[tuple[str, int, BaseException | None, bool]] = []

    def when_step_fails(
        self, step: str, *, times: int = 1, error: BaseException | None = None
    ) -> Self:
        """The next ``times`` attempts of ``step`` raise (``-1``: all of them)."""
        self._faults.append((step, times, error, False))
        return self

    def when_compensation_fails(
        self, step: str, *, times: int = 1, error: BaseException | None = None
    ) -> Self:
        """The next ``times`` attempts of ``step``'s compensation raise (``-1``: all)."""
        self._faults.append((step, times, error, True))
        return self

    async def then(
        self,
        *,
        status: SagaStatus | None = None,
        log: Sequence[LogLine] | None = None,
        state: object = ...,
        within: float | timedelta = timedelta(days=30),
    ) -> SagaRecord:
        """Start the instance, run it to its end on the fake clock, and check the outcome.

        Args:
            status: The status it must end in.
            log: Its whole step log, each entry as ``(step, kind)`` or
                ``(step, kind, attempt)``; a kind is a ``SagaLogKind`` or its value.
            state: What its state must equal at the end.
            within: How far the clock may move before the test fails.

        Returns:
            The instance as it ended, for further checks.

        Raises:
            SpecFailedError: It ended otherwise (the message shows expected and actual).
        """
        harness = self._harness
        for step, times, error, compensation in self._faults:
            harness.fail(step, times=times, error=error, compensation=compensation)
        saga_id = await harness.start(self._saga, self._state, saga_id=self._saga_id)
        await harness.settle(within=within)
        record = await harness.get(saga_id)
        problems: list[str] = []
        if status is not None and record.status is not status:
            problems.append(f"expected status {status.value}, but it is {record.status.value}")
        if log is not None:
            expected = [(line[0], SagaLogKind(line[1]).value, *line[2:]) for line in log]
            actual = [_line(e, len(x)) for e, x in zip(record.log, expected, strict=False)]
            if len(record.log) != len(expected) or actual != expected:
                got = [_line(e, 3) for e in record.log]
                problems.append(f"expected log {_lines(expected)}\n     but got {_lines(got)}")
        if state is not ...:
            decoded = harness.control.state(record)
            if decoded != state:
                problems.append(f"expected state {state!r}\n     but got {decoded!r}")
        if problems:
            raise SpecFailedError(f"saga `{saga_id}`: " + "\n".join(problems))
        return record


def _line(entry: Any, size: int) -> tuple[Any, ...]:
    return (entry.step, entry.kind.value, entry.attempt)[:size]


def _lines(lines: Sequence[tuple[Any, ...]]) -> str:
    return "[" + ", ".join(repr(line) for line in lines) + "]" if lines else "[] (empty)"
