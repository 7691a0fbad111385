"""``SagaControl``: list and show saga instances, retry, skip or cancel parked ones, purge
finished ones, draw sagas and the path of one instance."""

from __future__ import annotations

import builtins
from dataclasses import replace
from datetime import timedelta
from typing import Any, Literal

from dishka import AsyncContainer

from dockyard.exceptions import SagaNotFoundError, SagaNotRegisteredError, SagaStateError
from dockyard.projections._runner import new_owner
from dockyard.sagas._engine import SagaEngine
from dockyard.sagas._path import path_dot, path_mermaid
from dockyard.sagas._record import SagaLogEntry, SagaLogKind, SagaRecord, SagaStatus, StepAction
from dockyard.sagas._registry import SagaRegistry
from dockyard.sagas._runner import purge_finished
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

    async def retry(
        self, saga_id: str, *, by: str | None = None, reason: str | None = None
    ) -> SagaRecord:
        """Resume a parked instance where it stopped, with fresh attempts; runners take it at
        once (this process's at once, others at their next poll).

        Args:
            saga_id: The parked instance.
            by: Who did it, for the step log.
            reason: Why, for the step log.

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
        entry = self._entry(record, SagaLogKind.RETRIED, by, reason)
        resumed = await self._change(record, entry, "retry", status=status, error=None)
        self._wake()
        return resumed

    async def skip(
        self, saga_id: str, *, by: str | None = None, reason: str | None = None
    ) -> SagaRecord:
        """Go on past the step a parked instance stopped at, as if it had completed.

        The step log gets a ``skipped`` entry (with ``by`` and ``reason``). An instance parked
        on a step's ``act`` (a step after the pivot gave up) goes on with the next step, or
        completes if it was the last; one parked on a compensation goes on compensating the
        steps before it, or ends compensated. Use it when the step's work was done by hand.

        Raises:
            SagaNotFoundError: No instance has that id.
            SagaStateError: It is not parked (failed), or its step is not in the registered
                definition (``retry`` it on a definition that has it, or ``cancel`` it).
        """
        record = await self._parked(saga_id, "skip")
        plan = self._registry.plans.get(record.name)
        planned = plan.get(record.step) if plan is not None and record.step else None
        if plan is None or planned is None:
            problem = (
                f"it is parked at step `{record.step}`, which the registered `{record.name}` "
                "does not have. Hint: `retry` it on a definition that has the step, or "
                "`cancel` it."
            )
            raise SagaStateError(saga_id, record.status.value, "skip", problem)
        entry = self._entry(record, SagaLogKind.SKIPPED, by, reason)
        log = (*record.log, entry)
        if record.action is StepAction.COMPENSATE:
            following = plan.to_compensate(log)
            status = SagaStatus.COMPENSATING if following else SagaStatus.COMPENSATED
        else:
            following = plan.after(planned)
            status = SagaStatus.RUNNING if following else SagaStatus.COMPLETED
        skipped = await self._change(record, entry, "skip", status=status, step=following)
        if following is not None:
            self._wake()
        return skipped

    async def cancel(
        self, saga_id: str, *, by: str | None = None, reason: str | None = None
    ) -> SagaRecord:
        """End a parked instance as cancelled: nothing more runs, nothing is undone.

        Raises:
            SagaNotFoundError: No instance has that id.
            SagaStateError: It is not parked (failed).
        """
        record = await self._parked(saga_id, "cancel")
        entry = self._entry(record, SagaLogKind.CANCELLED, by, reason)
        return await self._change(record, entry, "cancel", status=SagaStatus.CANCELLED)

    async def purge_finished(self, older_than: timedelta | float, *, batch: int = 500) -> int:
        """Delete finished instances (completed, compensated, cancelled) that ended more than
        ``older_than`` ago, ``batch`` at a time (each batch a short transaction of its own);
        return how many. Running and parked instances are never deleted.

        The worker's runner does this by itself with ``SagaSettings(retain_finished=...)``.
        """
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if seconds < 0 or batch < 1:
            msg = f"purge_finished needs older_than >= 0 and batch >= 1, got {seconds}, {batch}"
            raise ValueError(msg)
        return await purge_finished(self._store, seconds, batch)

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

    async def instance_diagram(
        self,
        saga_id: str,
        *,
        format: Literal["mermaid", "dot"] = "mermaid",  # noqa: A002 - the CLI's word
    ) -> str:
        """The path instance ``saga_id`` took, from its step log, as a state diagram: each step
        and compensation it ran, how it left each one, and where it is now.

        Args:
            saga_id: The instance.
            format: ``"mermaid"`` (``stateDiagram-v2``) or ``"dot"`` (Graphviz).

        Raises:
            SagaNotFoundError: No instance has that id.
        """
        record = await self.get(saga_id)
        return path_dot(record) if format == "dot" else path_mermaid(record)

    async def _parked(self, saga_id: str, action: str) -> SagaRecord:
        record = await self.get(saga_id)
        if record.status is not SagaStatus.FAILED:
            raise SagaStateError(saga_id, record.status.value, action)
        return record

    def _entry(
        self, record: SagaRecord, kind: SagaLogKind, by: str | None, reason: str | None
    ) -> SagaLogEntry:
        said = [part for part in (f"by {by}" if by else None, reason) if part]
        note = ": ".join(said) if said else None
        return SagaLogEntry(record.step or "", kind, 0, self._registry.clock(), note=note)

    def _wake(self) -> None:
        runner = self._registry.runner_for(self._store)
        if runner is not None:
            runner.wake()

    async def _change(
        self, record: SagaRecord, entry: SagaLogEntry, action: str, **changes: Any
    ) -> SagaRecord:
        """Write an operator's change of a parked instance, logged as ``entry``."""
        changed = replace(
            record,
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
