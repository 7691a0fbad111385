"""One batch of a catch-up projection: read, fence, apply, checkpoint, commit — one transaction."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dishka import AsyncContainer
from dishka.exceptions import NoFactoryError

from dockyard.eventsourcing._store import EventStore, OpenAppend, RecordedEvent
from dockyard.messaging._transactional import UnitOfWork
from dockyard.projections._checkpoints import Checkpoint, CheckpointStore, Failure, utc_now
from dockyard.projections._log import held_back_by, log_heads
from dockyard.projections._projection import Projection, Target
from dockyard.projections._settings import RunnerSettings

__all__ = ["Engine", "LocalState", "Step", "StepOutcome"]

logger = logging.getLogger("dockyard.projections")


class StepOutcome(enum.Enum):
    """What one step of a catch-up runner did (internal: not ``dockyard.consumer.Outcome``)."""

    APPLIED = "applied"
    """Events were applied (or the checkpoint moved past events of other types)."""
    IDLE = "idle"
    """Nothing new."""
    CONFLICT = "conflict"
    """Someone else moved the checkpoint between the read and the fence: nothing applied."""
    PARKED = "parked"
    """The projection is parked on a failed event."""
    PAUSED = "paused"
    """An operator paused the projection."""
    FAILED = "failed"
    """A handler (or ``flush``) raised; the batch was rolled back."""


@dataclass(frozen=True, slots=True)
class Step:
    outcome: StepOutcome
    checkpoint: Checkpoint
    applied: int = 0
    batch: int = 0
    """How many events the batch held."""
    failed: RecordedEvent | None = None
    """The event whose handler raised (or the batch's last one when ``flush`` raised)."""
    last_read: int = 0
    """The position of the batch's last event."""
    error: BaseException | None = None


@dataclass(slots=True)
class LocalState:
    """What this process knows about one projection beyond its checkpoint row."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Keeps this process's runner and control operations out of each other's way (the
    checkpoint row lock does the same across processes, except in memory)."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by control operations so a waiting runner looks again at once."""
    running: bool = False
    """A runner of this process holds the lease and is applying."""
    last_error: str | None = None
    events_applied: int = 0
    held_back_by: OpenAppend | None = None
    """The open appender the last idle step found committed events waiting behind."""
    warned_about: int | None = None
    """The server pid of the appender a warning was logged for (``None``: none pending)."""


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class Engine:
    """Runs batches for one target in fresh scopes of one app."""

    __slots__ = ("_component", "_open_scope", "_transactional", "settings", "target")

    def __init__(
        self,
        target: Target,
        open_scope: Callable[[], AsyncContainer],
        component: str,
        settings: RunnerSettings,
    ) -> None:
        self.target = target
        self.settings = settings
        self._open_scope = open_scope
        self._component = component
        self._transactional: bool | None = None

    async def _uow(self, scope: AsyncContainer) -> UnitOfWork | None:
        if self._transactional is False:
            return None
        try:
            uow: UnitOfWork = await scope.get(UnitOfWork, component=self._component)
        except NoFactoryError:
            self._transactional = False
            return None
        self._transactional = True
        return uow

    async def get(self, scope: AsyncContainer, dependency: type[Any]) -> Any:
        return await scope.get(dependency, component=self._component)

    async def step(self, limit: int, local: LocalState) -> Step:
        """Apply up to ``limit`` events after the checkpoint, in one transaction."""
        async with local.lock, self._open_scope() as scope:
            store: EventStore = await self.get(scope, EventStore)
            checkpoints: CheckpointStore = await self.get(scope, CheckpointStore)
            uow = await self._uow(scope)
            try:
                step = await self._step(scope, store, checkpoints, uow, limit, local)
            except BaseException:
                if uow is not None:
                    await uow.rollback()
                raise
            if step.applied:
                local.events_applied += step.applied
            return step

    async def _step(
        self,
        scope: AsyncContainer,
        store: EventStore,
        checkpoints: CheckpointStore,
        uow: UnitOfWork | None,
        limit: int,
        local: LocalState,
    ) -> Step:
        target = self.target
        # before the read: everything up to the final head is final
        head, committed = await log_heads(store)
        checkpoint = await checkpoints.load(target.name)
        if checkpoint.paused_at is not None:
            return Step(StepOutcome.PAUSED, checkpoint)
        if checkpoint.failure is not None:
            return Step(StepOutcome.PARKED, checkpoint)
        events = await store.read_all(checkpoint.position, limit, target.event_types)
        if not events and head <= checkpoint.position:
            blocker = await held_back_by(store) if committed > head else None
            self._held_back(local, blocker)
            return Step(StepOutcome.IDLE, checkpoint)
        self._held_back(local, None)
        locked = await checkpoints.lock(target.name)
        if (
            locked.position != checkpoint.position
            or locked.failure is not None
            or locked.paused_at is not None
        ):
            if uow is not None:
                await uow.rollback()
            return Step(StepOutcome.CONFLICT, locked)
        instance = await self.get(scope, target.cls)
        applied, last = 0, checkpoint.position
        try:
            for event in events:
                apply = target.applier(type(event.data))
                if apply is not None:
                    await apply(instance, event)
                applied += 1
                last = event.global_position
            if target.is_projection:
                await instance.flush()
        except Exception as error:  # noqa: BLE001 - any handler error parks, never escapes
            return await self._failed(uow, checkpoints, locked, events, applied, last, error)
        position = last if len(events) == limit else max(last, head)
        saved = replace(
            locked,
            position=position,
            applied_since_reset=locked.applied_since_reset + applied,
        )
        await checkpoints.save(saved)
        if uow is not None:
            await uow.commit()
        return Step(StepOutcome.APPLIED, saved, applied, len(events), last_read=last)

    def _held_back(self, local: LocalState, blocker: OpenAppend | None) -> None:
        """Remember who holds the projection back; warn once when it lasts, say when it ends."""
        local.held_back_by = blocker
        if blocker is None:
            if local.warned_about is not None:
                local.warned_about = None
                logger.info("projection %s: no longer held back", self.target.name)
            return
        if blocker.age < self.settings.held_back_warning or local.warned_about == blocker.pid:
            return
        local.warned_about = blocker.pid
        logger.warning(
            "projection %s: held back for %.0f s by an open transaction that appended events"
            " (server pid %d, %s, application %r); events committed after it are not read"
            " until it ends",
            self.target.name,
            blocker.age,
            blocker.pid,
            blocker.state,
            blocker.application_name,
        )

    async def _failed(
        self,
        uow: UnitOfWork | None,
        checkpoints: CheckpointStore,
        locked: Checkpoint,
        events: Sequence[RecordedEvent],
        applied: int,
        last: int,
        error: Exception,
    ) -> Step:
        failed = events[min(applied, len(events) - 1)]
        if uow is not None:
            await uow.rollback()
            return Step(
                StepOutcome.FAILED,
                locked,
                0,
                len(events),
                failed,
                events[-1].global_position,
                error,
            )
        # No transaction to roll back (a read model in memory): what was applied stays applied,
        # so the checkpoint must say so or those events would be applied twice.
        kept = replace(locked, applied_since_reset=locked.applied_since_reset + applied)
        if applied and applied < len(events):
            kept = replace(kept, position=last)
        await checkpoints.save(kept)
        return Step(
            StepOutcome.FAILED,
            kept,
            applied,
            len(events),
            failed,
            events[-1].global_position,
            error,
        )

    # -- operations on the checkpoint, each in its own transaction under the fence ----------

    async def change(
        self,
        local: LocalState,
        change: Callable[[Checkpoint], Checkpoint | None],
        *,
        reset: bool = False,
    ) -> Checkpoint | None:
        """Lock the checkpoint, apply ``change`` (``None``: leave it), commit; optionally run
        the projection's ``reset()`` first, in the same transaction."""
        async with local.lock, self._open_scope() as scope:
            checkpoints: CheckpointStore = await self.get(scope, CheckpointStore)
            uow = await self._uow(scope)
            try:
                locked = await checkpoints.lock(self.target.name)
                changed = change(locked)
                if changed is None:
                    if uow is not None:
                        await uow.rollback()
                    return None
                if reset:
                    instance: Projection = await self.get(scope, self.target.cls)
                    await instance.reset()
                await checkpoints.save(changed)
                if uow is not None:
                    await uow.commit()
            except BaseException:
                if uow is not None:
                    await uow.rollback()
                raise
        local.wake.set()
        return changed

    async def park(self, local: LocalState, position: int | None, failed_at: int, error: str,
                   attempts: int) -> None:  # fmt: skip
        """Record the failure of the event at ``failed_at``, unless someone moved the
        checkpoint meanwhile: from ``position``, or (``None``: not known) past the event."""
        failure = Failure(failed_at, error, attempts, utc_now())

        def mark(current: Checkpoint) -> Checkpoint | None:
            moved = (
                current.position >= failed_at
                if position is None
                else (current.position != position)
            )
            if moved or current.failure is not None:
                return None
            return replace(current, failure=failure)

        await self.change(local, mark)
