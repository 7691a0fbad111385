"""Saga definitions as data: ``Saga``, its ``Step``s, and the ``SagaStep`` handlers they run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from dockyard._type_name import type_name
from dockyard.retry import CircuitBreaker, RetryPolicy
from dockyard.sagas._diagram import mermaid
from dockyard.sagas._guard import guard_problems
from dockyard.sagas._remote_step import Remote, remote_problems
from dockyard.sagas._step import SagaStep, is_compensable

__all__ = ["Saga", "Step", "pivot", "step"]

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Step(Generic[S]):
    """One step of a saga: a stable name, its handler, and what to do when it fails.

    Build it with :func:`step` or :func:`pivot`.
    """

    name: str
    """Stable: stored instances name their position by it."""
    handler: type[SagaStep[S]]
    retry: RetryPolicy | None = None
    """Attempts before the fallback (or compensation) takes over; ``None``: the saga's."""
    fallback: Step[S] | None = None
    """Run from the pre-step state once the retries ran out."""
    pivot: bool = False
    """The point of no return: once it commits, later failures retry forward."""
    breaker: CircuitBreaker | None = None
    """While open, ``act`` is not called: the fallback (or compensation) takes over at once."""
    timeout: float | None = None
    """Seconds an attempt (``act`` or ``compensate``) may run before it is cancelled."""
    remote: Remote | None = None
    """For a step declared with :func:`remote`: its command's destination, replies, timeout."""


def step(
    name: str,
    handler: type[SagaStep[S]],
    /,
    *,
    retry: RetryPolicy | None = None,
    fallback: Step[S] | None = None,
    breaker: CircuitBreaker | None = None,
    timeout: float | timedelta | None = None,
) -> Step[S]:
    """A step named ``name`` run by ``handler`` (its ``compensate``, if any, undoes it).

    Args:
        name: Stable name of the step, unique in its saga (fallbacks included).
        handler: The ``SagaStep`` class; resolved in a new scope for each attempt.
        retry: How often an attempt is retried before the fallback or compensation.
        fallback: Another step to run, from the pre-step state, once the retries ran out.
        breaker: A ``CircuitBreaker`` around ``act``: while it is open, ``act`` is not called
            and the step gives up at once (to its fallback, else compensation); the decision
            is written to the step log.
        timeout: Seconds (or a ``timedelta``) an attempt may run; a longer one is cancelled,
            its transaction rolled back, and it counts as a failed attempt.
    """
    return Step(name, handler, retry, fallback, breaker=breaker, timeout=_seconds(timeout))


def pivot(
    name: str,
    handler: type[SagaStep[S]],
    /,
    *,
    retry: RetryPolicy | None = None,
    fallback: Step[S] | None = None,
    breaker: CircuitBreaker | None = None,
    timeout: float | timedelta | None = None,
) -> Step[S]:
    """The saga's point of no return: if it fails, the steps before it are compensated; once it
    has committed, the steps after it are only retried forward (none of them, nor the pivot,
    may have a ``compensate``). Arguments as for :func:`step`."""
    seconds = _seconds(timeout)
    return Step(name, handler, retry, fallback, pivot=True, breaker=breaker, timeout=seconds)


def _seconds(timeout: float | timedelta | None) -> float | None:
    return timeout.total_seconds() if isinstance(timeout, timedelta) else timeout


@dataclass(frozen=True, slots=True)
class Saga(Generic[S]):
    """A saga type, declared as data: checked when registered, drawn with :meth:`diagram`.

    Example:
        ```python
        checkout = Saga(
            "checkout",
            version=1,
            state=Checkout,
            steps=[step("reserve", ReserveStock), pivot("charge", Charge)],
        )
        ```

    Attributes:
        name: Stable name; stored instances refer to their saga by it.
        version: The definition's version, stored with each instance. Bump it when a change
            of steps means old instances cannot resume on the new definition.
        state: The class of the saga's state (anything dockyard's serializer encodes); its
            stable type name and schema version are stored, so upcasters migrate old state.
        steps: The steps, in order.
        retry: Attempts of each step, unless the step says otherwise (``None``: the module's
            ``SagaSettings.retry``).
        compensation_retry: Attempts of each compensation before the instance parks as failed
            (``None``: ``SagaSettings.compensation_retry``).
        compatible_with: Older versions whose instances this definition can resume.
    """

    name: str
    version: int
    state: type[S]
    steps: Sequence[Step[S]]
    retry: RetryPolicy | None = None
    compensation_retry: RetryPolicy | None = None
    compatible_with: Iterable[int] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "compatible_with", tuple(self.compatible_with))

    def accepts(self, version: int) -> bool:
        """Whether an instance started under ``version`` can run on this definition."""
        return version == self.version or version in tuple(self.compatible_with)

    def problems(self) -> list[str]:
        """Everything that keeps this definition from running, as sentences (empty if valid)."""
        return _problems(self)

    def diagram(self) -> str:
        """A Mermaid state diagram of the definition: steps, fallbacks, compensations, pivot."""
        return mermaid(self)


def _problems(saga: Saga[Any]) -> list[str]:  # noqa: PLR0912 - one check per line
    # Definitions are data a type checker may not have seen: check what they hold at run time.
    name: object = saga.name
    version: object = saga.version
    state: object = saga.state
    steps: Sequence[object] = saga.steps
    where = f"Saga `{name}`"
    found: list[str] = []
    if not isinstance(name, str) or not name.strip():
        found.append(f"{where} has an empty name: give it a stable, non-empty `name`")
    if not isinstance(version, int) or version < 1:
        found.append(f"{where} has version {version!r}: versions are integers from 1")
    if not isinstance(state, type):
        found.append(f"{where} has state {state!r}, which is not a class")
    if version in tuple(saga.compatible_with):
        found.append(f"{where} lists its own version {version} in `compatible_with`")
    if not steps:
        found.append(f"{where} has no steps")
    seen: set[str] = set()
    breakers: dict[str, CircuitBreaker] = {}
    pivot_name: str | None = None
    for position, primary in enumerate(steps, 1):
        if not isinstance(primary, Step):
            found.append(
                f"{where}: step {position} is `{type_name(primary)}`, not a step; "
                "write `step(name, Handler)` or `pivot(name, Handler)`"
            )
            continue
        branches: list[Step[Any]] = [primary]
        fallback: object = primary.fallback
        if fallback is not None:
            if not isinstance(fallback, Step):
                found.append(
                    f"{where}: the fallback of `{primary.name}` is not a step; "
                    "write `fallback=step(name, Handler)`"
                )
            else:
                branches.append(fallback)
                if fallback.fallback is not None:
                    found.append(
                        f"{where}: the fallback `{fallback.name}` of `{primary.name}` has a "
                        "fallback of its own; one fallback per step"
                    )
                if fallback.pivot:
                    found.append(
                        f"{where}: the fallback `{fallback.name}` is declared with `pivot(...)`;"
                        f" mark the primary step `{primary.name}` as the pivot instead"
                    )
        role = "after" if pivot_name is not None else "before"
        if primary.pivot:
            if pivot_name is not None:
                found.append(
                    f"{where} has two pivots, `{pivot_name}` and `{primary.name}`; a saga has "
                    "one point of no return"
                )
            else:
                pivot_name, role = primary.name, "pivot"
        for branch in branches:
            found.extend(_branch_problems(where, branch, seen, role, pivot_name))
            found.extend(guard_problems(where, branch, breakers))
    return found


def _branch_problems(
    where: str, branch: Step[Any], seen: set[str], role: str, pivot_name: str | None
) -> list[str]:
    found: list[str] = []
    name: object = branch.name
    if not isinstance(name, str) or not name.strip():
        found.append(f"{where} has a step with an empty name")
    elif name in seen:
        found.append(f"{where} has two steps named `{name}`; step names are unique")
    else:
        seen.add(name)
    handler: object = branch.handler
    found.extend(remote_problems(where, branch.name, handler, branch.remote))
    if not (isinstance(handler, type) and issubclass(handler, SagaStep)):
        found.append(
            f"{where}: step `{branch.name}` is run by `{type_name(handler)}`, which is not a "
            "`SagaStep` subclass"
        )
    elif role == "pivot" and is_compensable(handler):
        found.append(
            f"{where}: the pivot `{branch.name}` is run by `{type_name(handler)}`, which has a "
            "`compensate`, but nothing is undone past the point of no return; remove it, or "
            "make an earlier step the pivot"
        )
    elif role == "after" and is_compensable(handler):
        found.append(
            f"{where}: step `{branch.name}` comes after the pivot `{pivot_name}`, but "
            f"`{type_name(handler)}` has a `compensate`, which would never run (after the "
            "pivot, failures retry forward); remove it, or move the pivot"
        )
    return found
