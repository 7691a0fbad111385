"""``SagaControl``: list and show saga instances, retry or cancel parked ones, draw sagas."""

from __future__ import annotations

import builtins
import time
from dataclasses import replace
from typing import Any

from dishka import AsyncContainer

from dockyard.exceptions import SagaNotFoundError, SagaNotRegisteredError, SagaStateError
from dockyard.projections._runner import new_owner
from dockyard.sagas._engine import SagaEngine
from dockyard.sagas._record import SagaLogEntry, SagaLogKind, SagaRecord, SagaStatus, StepAction
from dockyard.sagas._registry import SagaRegistry
from dockyard.sagas._store import SagaStore
from dockyard.telemetry._instruments import Instruments

__all__ = ["SagaControl"]


class SagaControl:
    """Operates an app's saga instances, from any process that shares their store.

    Inject it (``SagasModule`` exports it) or get it with ``await app.get(SagaControl)``.
    """

    __slots__ = ("_container", "_registry", "_store")

    def __init__(self, store: SagaStore, registry: SagaRegistry, container: AsyncContainer) -> None:
        self._store = store
        self._registry = registry
        self._container = container

    @property
    def names(self) -> builtins.list[str]:
        """The registered sagas, in registration order."""
        return self._registry.names

    async def list(
        self,
        *,
        name: str | None = None,
        status: SagaStatus | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> builtins.list[SagaRecord]:
        """Instances oldest first, ``limit`` at a time after the instance ``after``.

        Args:
            name: Only instances of this saga.
            status: Only instances in this status (``SagaStatus.FAILED``: the parked ones).
            limit: At most this many.
            after: The last id of the previous page.
        """
        return await self._store.find(name=name, status=status, limit=limit, after=after)

    async def get(self, saga_id: str) -> SagaRecord:
        """One instance, with its step log.

        Raises:
            SagaNotFoundError: No instance has that id.
        """
        record = await self._store.get(saga_id)
        if record is None:
            raise SagaNotFoundError(saga_id)
        return record

    def state(self, record: SagaRecord) -> object:
        """The instance's state, decoded (and upcast) as its steps see it."""
        return self._registry.serializer.deserialize(
            record.state_type, record.state_schema, record.state
        )

    async def retry(self, saga_id: str) -> SagaRecord:
        """Resume a parked instance where it stopped, with fresh attempts; runners take it at
        once (this process's at once, others at their next poll).

        Raises:
            SagaNotFoundError: No instance has that id.
            SagaStateError: It is not parked (failed).
        """
        record = await self._parked(saga_id, "retry")
        status = (
            SagaStatus.COMPENSATING
            if record.action is StepAction.COMPENSATE
            else SagaStatus.RUNNING
        )
        resumed = await self._change(record, SagaLogKind.RETRIED, "retry", status, error=None)
        runner = self._registry.runner_for(self._store)
        if runner is not None:
            runner.wake()
        return resumed

    async def cancel(self, saga_id: str) -> SagaRecord:
        """End a parked instance as cancelled: nothing more runs, nothing is undone.

        Raises:
            SagaNotFoundError: No instance has that id.
            SagaStateError: It is not parked (failed).
        """
        record = await self._parked(saga_id, "cancel")
        return await self._change(record, SagaLogKind.CANCELLED, "cancel", SagaStatus.CANCELLED)

    async def run_due(self) -> int:
        """Run every instance due now, in this process, until none is due; return how many
        step attempts ran.

        For tests and scripts: a worker's runner does this all the time. Instances another
        runner holds are left to it; an instance released until a retry is due later is left
        for then.
        """
        registry = self._registry
        settings = registry.settings
        owner = new_owner()
        instruments: Instruments = await self._container.get(Instruments)
        engine = SagaEngine(registry, self._container, owner, instruments=instruments)
        attempts = 0
        while True:
            claimed = await self._store.claim(
                registry.names, owner, settings.concurrency, settings.lease_ttl
            )
            if not claimed:
                return attempts
            for record in claimed:
                current: SagaRecord | None = record
                while current is not None:
                    current = await engine.advance(current)
                    attempts += 1

    def diagram(self, name: str) -> str:
        """The Mermaid state diagram of the registered saga ``name``.

        Raises:
            SagaNotRegisteredError: No saga of that name is registered.
        """
        plan = self._registry.plans.get(name)
        if plan is None:
            raise SagaNotRegisteredError(name, self.names)
        return plan.saga.diagram()

    async def _parked(self, saga_id: str, action: str) -> SagaRecord:
        record = await self.get(saga_id)
        if record.status is not SagaStatus.FAILED:
            raise SagaStateError(saga_id, record.status.value, action)
        return record

    async def _change(
        self,
        record: SagaRecord,
        kind: SagaLogKind,
        action: str,
        status: SagaStatus,
        **changes: Any,
    ) -> SagaRecord:
        """Write an operator's change of a parked instance, logged as ``kind``."""
        entry = SagaLogEntry(record.step or "", kind, 0, time.time())
        changed = replace(
            record,
            status=status,
            attempts=0,
            log=(*record.log, entry),
            version=record.version + 1,
            owner=None,
            **changes,
        )
        if not await self._store.update(changed):
            current = await self.get(record.saga_id)  # it moved meanwhile: say to what
            raise SagaStateError(record.saga_id, current.status.value, action)
        return changed
