"""A registered saga as the runner reads it: steps by name, what follows what, what undoes what."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.retry import RetryPolicy
from dockyard.sagas._definition import Saga, Step
from dockyard.sagas._record import SagaLogEntry, SagaLogKind
from dockyard.sagas._settings import SagaSettings
from dockyard.sagas._step import is_compensable

__all__ = ["Plan", "PlannedStep"]

_UNDONE = frozenset({SagaLogKind.COMPENSATED, SagaLogKind.SKIPPED})
"""Log kinds after which a completed step has nothing left to undo (an operator may skip a
compensation that gave up)."""


@dataclass(frozen=True, slots=True)
class PlannedStep:
    step: Step[Any]
    position: int
    """Index of its primary step in ``Saga.steps``."""
    fallback: str | None
    """The fallback's name, for a primary step that has one."""
    is_fallback: bool
    compensable: bool
    forward_only: bool
    """Strictly after the pivot: when it gives up, the instance parks; nothing is undone."""
    retry: RetryPolicy

    @property
    def name(self) -> str:
        return self.step.name


class Plan:
    """The steps of one valid saga definition, looked up by name (compiled at registration)."""

    __slots__ = ("_order", "_steps", "compensation_retry", "saga")

    def __init__(self, saga: Saga[Any], settings: SagaSettings) -> None:
        self.saga = saga
        self.compensation_retry = saga.compensation_retry or settings.compensation_retry
        default = saga.retry or settings.retry
        self._steps: dict[str, PlannedStep] = {}
        self._order: list[str] = []
        after_pivot = False
        for position, primary in enumerate(saga.steps):
            fallback = primary.fallback
            self._order.append(primary.name)
            for branch in (primary, fallback):
                if branch is None:
                    continue
                self._steps[branch.name] = PlannedStep(
                    step=branch,
                    position=position,
                    fallback=fallback.name if fallback is not None and branch is primary else None,
                    is_fallback=branch is not primary,
                    compensable=is_compensable(branch.handler),
                    forward_only=after_pivot,
                    retry=branch.retry or default,
                )
            after_pivot = after_pivot or primary.pivot

    @property
    def name(self) -> str:
        return self.saga.name

    @property
    def first(self) -> str:
        return self._order[0]

    @property
    def handlers(self) -> list[type]:
        return [planned.step.handler for planned in self._steps.values()]

    def get(self, name: str) -> PlannedStep | None:
        return self._steps.get(name)

    def after(self, planned: PlannedStep) -> str | None:
        """The step that follows ``planned`` once it (or its fallback) completed."""
        following = planned.position + 1
        return self._order[following] if following < len(self._order) else None

    def to_compensate(self, log: Sequence[SagaLogEntry]) -> str | None:
        """The newest completed, not yet compensated (nor skipped) step with a ``compensate``.

        Raises:
            KeyError: The log names a step this definition does not have.
        """
        compensated = {e.step for e in log if e.kind in _UNDONE}
        completed = [e.step for e in log if e.kind is SagaLogKind.COMPLETED]
        for name in reversed(completed):
            if name in compensated:
                continue
            if self._steps[name].compensable:
                return name
        return None
