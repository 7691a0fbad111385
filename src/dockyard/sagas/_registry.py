"""The sagas of one ``SagasModule`` registration, and the runner of this process for them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dockyard.exceptions import SagaNotRegisteredError
from dockyard.sagas._definition import Saga
from dockyard.sagas._plan import Plan
from dockyard.sagas._record import SagaRecord
from dockyard.sagas._settings import SagaSettings
from dockyard.serialization import Serializer

__all__ = ["LocalRunner", "SagaRegistry"]


class LocalRunner(Protocol):
    """What ``Sagas.start`` and ``SagaControl`` need of a runner running in this process."""

    @property
    def owner(self) -> str: ...

    def hand_off(self, record: SagaRecord) -> None:
        """Run ``record`` (inserted owned by this runner, now committed) without a claim."""
        ...

    def wake(self) -> None:
        """Claim at once: an instance was made due."""
        ...


@dataclass(slots=True, eq=False)
class SagaRegistry:
    """The compiled sagas of one registration (app-independent), their settings and codec."""

    plans: dict[str, Plan]
    settings: SagaSettings
    serializer: Serializer
    component: str = ""
    """The Dishka component of the module, recorded when the app starts."""
    clock: Callable[[], float] = time.time
    """Seconds since the epoch, for the step log's times (a test harness sets a fake one)."""
    _runners: dict[int, LocalRunner] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.plans)

    def plan_of(self, saga: Saga[Any]) -> Plan:
        """The registered plan of ``saga``.

        Raises:
            SagaNotRegisteredError: No saga of that name, or another definition under it.
        """
        plan = self.plans.get(saga.name)
        if plan is None or (plan.saga is not saga and plan.saga != saga):
            raise SagaNotRegisteredError(saga.name, self.names)
        return plan

    def runner_for(self, store: object) -> LocalRunner | None:
        """The runner of this process working on ``store`` (the app's ``SagaStore``), if any."""
        return self._runners.get(id(store))

    def attach(self, store: object, runner: LocalRunner) -> None:
        self._runners[id(store)] = runner

    def detach(self, store: object, runner: LocalRunner) -> None:
        if self._runners.get(id(store)) is runner:
            del self._runners[id(store)]
