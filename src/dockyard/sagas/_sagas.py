"""``Sagas``: start a saga instance in the current scope's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from dockyard.exceptions import SagaAlreadyStartedError
from dockyard.sagas._definition import Saga
from dockyard.sagas._record import SagaRecord, SagaStatus, StepAction
from dockyard.sagas._registry import SagaRegistry
from dockyard.sagas._store import SagaStore, SagaWriter

__all__ = ["SagaHandle", "SagaStepContext", "Sagas"]

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class SagaHandle:
    """A started (or, with ``if_exists="return"``, an existing) saga instance."""

    saga_id: str
    name: str
    created: bool
    """``False`` when the id existed and nothing was started."""


@dataclass(frozen=True, slots=True)
class SagaStepContext:
    """Which instance and step the current attempt belongs to; inject it in a ``SagaStep``."""

    saga_id: str
    name: str
    step: str
    attempt: int
    """1 for the first attempt of this step (and action), 2 for its first retry, …"""

    @property
    def idempotency_key(self) -> str:
        """``name:saga_id:step``, the same on every attempt and after recovery: pass it to a
        remote service so that a retried call is not done twice."""
        return f"{self.name}:{self.saga_id}:{self.step}"


class Sagas:
    """Starts saga instances; inject it (``SagasModule`` exports it to every module).

    Example:
        ```python
        class PlaceOrderHandler(CommandHandler[PlaceOrder, str]):
            def __init__(self, sagas: Sagas) -> None:
                self._sagas = sagas

            async def handle(self, command: PlaceOrder) -> str:
                await self._sagas.start(checkout, Checkout(command.order_id), saga_id=...)
                return command.order_id
        ```
    """

    __slots__ = ("_registry", "_store", "_writer")

    def __init__(self, writer: SagaWriter, store: SagaStore, registry: SagaRegistry) -> None:
        self._writer = writer
        self._store = store
        self._registry = registry

    async def start(
        self,
        saga: Saga[S],
        state: S,
        /,
        *,
        saga_id: str | None = None,
        if_exists: Literal["error", "return"] = "error",
    ) -> SagaHandle:
        """Start an instance of ``saga`` with ``state``, in this scope's transaction.

        The instance exists once the scope commits (and never if it rolls back); a runner
        then runs it, at once if one runs in this process.

        Args:
            saga: A saga registered in ``SagasModule.register(sagas=[...])``.
            state: Its initial state, an instance of ``saga.state``.
            saga_id: The instance's id (a new UUID by default); one id, one instance, ever.
            if_exists: When an instance with ``saga_id`` exists (running or finished):
                ``"error"`` raises, ``"return"`` returns its handle with ``created=False``.

        Raises:
            SagaAlreadyStartedError: ``saga_id`` exists and ``if_exists`` is ``"error"``.
            SagaNotRegisteredError: ``saga`` is not registered in this app.
        """
        registry = self._registry
        plan = registry.plan_of(saga)
        serialized = registry.serializer.serialize(state)
        runner = registry.runner_for(self._store)
        record = SagaRecord(
            saga_id=saga_id or uuid.uuid4().hex,
            name=saga.name,
            definition_version=saga.version,
            status=SagaStatus.RUNNING,
            step=plan.first,
            action=StepAction.ACT,
            attempts=0,
            state_type=serialized.type_name,
            state_schema=serialized.schema_version,
            state=serialized.data,
            version=1,
            owner=runner.owner if runner is not None else None,
        )
        on_commit: Any = None
        if runner is not None:
            hand_off = runner.hand_off

            def on_commit() -> None:
                hand_off(record)

        added = await self._writer.add(
            record,
            lease_ttl=registry.settings.lease_ttl if runner is not None else None,
            on_commit=on_commit,
        )
        if not added and if_exists == "error":
            raise SagaAlreadyStartedError(record.saga_id, saga.name)
        return SagaHandle(record.saga_id, saga.name, created=added)
