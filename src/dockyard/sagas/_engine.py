"""One step attempt of one instance: a fresh scope, one transaction, a fenced checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from dishka import AsyncContainer
from dishka.exceptions import ExitError, NoFactoryError

from dockyard.exceptions import SagaVersionError, StoreUnavailableError
from dockyard.messaging._transactional import UnitOfWork
from dockyard.sagas._guard import circuit_opened, guarded
from dockyard.sagas._plan import Plan, PlannedStep
from dockyard.sagas._record import SagaLogEntry, SagaLogKind, SagaRecord, SagaStatus, StepAction
from dockyard.sagas._registry import SagaRegistry
from dockyard.sagas._remote import RemoteSender, awaiting, failed_wait
from dockyard.sagas._sagas import SagaStepContext
from dockyard.sagas._store import SagaWriter
from dockyard.serialization._serializer import DECODE_ERRORS
from dockyard.telemetry._instruments import OUTCOME, SAGA, SAGA_STEP, Instruments

__all__ = ["SagaEngine", "describe", "outage_of"]

logger = logging.getLogger("dockyard.sagas")


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def outage_of(error: BaseException) -> StoreUnavailableError | None:
    """The database outage behind ``error`` (also when a scope's exit raised it), if any."""
    if isinstance(error, StoreUnavailableError):
        return error
    if isinstance(error, ExitError):
        for inner in error.exceptions:
            if isinstance(inner, StoreUnavailableError):
                return inner
    return None


class _Refused(Exception):  # noqa: N818 - internal signal, never escapes the engine
    """The fence refused the checkpoint: someone else holds the instance now."""


class SagaEngine:
    """Runs step attempts for the runner ``owner`` in fresh scopes of one app."""

    __slots__ = (
        "_instruments",
        "_open_scope",
        "_transactional",
        "owner",
        "registry",
        "wake_at",
    )

    def __init__(
        self,
        registry: SagaRegistry,
        container: AsyncContainer,
        owner: str,
        wake_at: Callable[[float], None] = lambda _delay: None,
        *,
        instruments: Instruments | None = None,
    ) -> None:
        self._instruments = instruments if instruments is not None and instruments.active else None
        self.registry = registry
        self.owner = owner
        self.wake_at = wake_at
        """Called with the delay of an instance released until a retry is due."""
        self._open_scope = container
        self._transactional: bool | None = None

    # -- one attempt ----------------------------------------------------------------------

    async def advance(self, record: SagaRecord) -> SagaRecord | None:
        """Run one attempt of ``record``'s current step (or compensation).

        Returns the instance as checkpointed if this runner still holds it and it has more to
        do, else ``None`` (finished, parked, released until a retry is due, or lost to
        another runner). A database outage raises ``StoreUnavailableError``: the attempt's
        outcome is then unknown, and the instance must be dropped.
        """
        if not record.status.is_active:
            return None
        plan = self.registry.plans[record.name]
        planned, problem = self._check(plan, record)
        if planned is None:
            await self._park(record, record.step or "", problem or "")
            return None
        try:
            state = self.registry.serializer.deserialize(
                record.state_type, record.state_schema, record.state
            )
        except DECODE_ERRORS as error:  # no retry can help until the code or data changes
            await self._park(record, planned.name, describe(error))
            return None
        if record.action is StepAction.AWAIT_REPLY:  # its timeout passed, or a failure reply
            waited, failure = failed_wait(record, planned)
            return await self._failed(plan, planned, waited, failure, compensate=False)
        compensate = record.action is StepAction.COMPENSATE
        instruments = self._instruments
        if instruments is None:
            return await self._attempt(plan, planned, record, state, compensate=compensate)
        return await self._traced(instruments, plan, planned, record, state, compensate=compensate)

    async def _traced(
        self,
        instruments: Instruments,
        plan: Plan,
        planned: PlannedStep,
        record: SagaRecord,
        state: Any,
        *,
        compensate: bool,
    ) -> SagaRecord | None:
        """``_attempt`` in a span (``saga checkout reserve``), counted by outcome."""
        action = "compensate" if compensate else "act"
        attributes = {
            SAGA: record.name,
            SAGA_STEP: planned.name,
            "dockyard.saga.action": action,
        }
        span = token = None
        if instruments.tracer is not None:
            detail = {
                **attributes,
                "dockyard.saga.id": record.saga_id,
                "dockyard.saga.attempt": record.attempts + 1,
            }
            span, token = instruments.start(f"saga {record.name} {planned.name}", detail)
        failed: BaseException | None = None
        failures: list[Exception] = []
        outcome = "error"
        try:
            result = await self._attempt(
                plan, planned, record, state, compensate=compensate, failures=failures
            )
        except BaseException as exc:
            failed = exc
            raise
        else:
            outcome = "failed" if failures else "done"
            return result
        finally:
            error = failed if isinstance(failed, Exception) else next(iter(failures), None)
            if instruments.saga_steps is not None:
                instruments.saga_steps.add(1, {**attributes, OUTCOME: outcome})
            if span is not None:
                span.set_attribute(OUTCOME, outcome)
                instruments.finish(span, token, error)

    async def _attempt(
        self,
        plan: Plan,
        planned: PlannedStep,
        record: SagaRecord,
        state: Any,
        *,
        compensate: bool,
        failures: list[Exception] | None = None,
    ) -> SagaRecord | None:
        """Run the step in a scope; ``failures`` gets the handler's error, if any."""
        try:
            async with self._scope(record, planned) as scope:
                writer, uow = await self._writer(scope)
                handler = await scope.get(planned.step.handler, component=self.registry.component)
                spec = None if compensate else planned.step.remote
                if spec is not None:  # the send is local (an outbox row); its reply is not
                    sender = await scope.get(RemoteSender, component=self.registry.component)
                    await sender.send(handler, state, record, planned)
                else:
                    call = handler.compensate if compensate else handler.act
                    await guarded(planned.step, record.saga_id, call, state, compensate=compensate)
                serialized = self.registry.serializer.serialize(state)
                done = replace(
                    record,
                    state_type=serialized.type_name,
                    state_schema=serialized.schema_version,
                    state=serialized.data,
                )
                if spec is None:
                    new = self._after_success(plan, planned, done, compensate=compensate)
                else:  # sent, from the pre-step state; the reply (or the timeout) resumes it
                    new = awaiting(record, planned)
                await self._checkpoint(writer, new, lease_ttl=spec.timeout if spec else None)
                if uow is not None:
                    await uow.commit()
                if spec is not None:
                    self.wake_at(spec.timeout)
        except _Refused:
            self._lost(record)
            return None
        except Exception as error:
            outage = outage_of(error)
            if outage is not None:
                raise outage from error
            if failures is not None:
                failures.append(error)
            return await self._failed(plan, planned, record, error, compensate=compensate)
        return new if new.owner == self.owner else None

    def _check(self, plan: Plan, record: SagaRecord) -> tuple[PlannedStep | None, str | None]:
        """The step to run, or why this definition cannot run the instance."""
        saga = plan.saga
        if not saga.accepts(record.definition_version):
            error = SagaVersionError(
                record.saga_id, record.name, record.definition_version, saga.version
            )
            return None, describe(error)
        planned = plan.get(record.step) if record.step is not None else None
        if planned is None:
            error = SagaVersionError(
                record.saga_id,
                record.name,
                record.definition_version,
                saga.version,
                record.step or "",
            )
            return None, describe(error)
        return planned, None

    async def _checkpoint(
        self,
        writer: SagaWriter,
        record: SagaRecord,
        *,
        due_in: float = 0.0,
        lease_ttl: float | None = None,
    ) -> None:
        """The fenced write, the last of its scope (committed next); raises ``_Refused`` (the
        scope then rolls back) if refused."""
        if not await writer.checkpoint(
            record,
            owner=self.owner,
            due_in=due_in,
            lease_ttl=lease_ttl or self.registry.settings.lease_ttl,
            last=True,
        ):
            raise _Refused

    def _after_success(
        self, plan: Plan, planned: PlannedStep, record: SagaRecord, *, compensate: bool
    ) -> SagaRecord:
        now = self.registry.clock()
        attempt = record.attempts + 1
        kind = SagaLogKind.COMPENSATED if compensate else SagaLogKind.COMPLETED
        log = (*record.log, SagaLogEntry(planned.name, kind, attempt, now))
        if compensate:
            following = plan.to_compensate(log)
            status = SagaStatus.COMPENSATING if following else SagaStatus.COMPENSATED
            action = StepAction.COMPENSATE
        else:
            following = plan.after(planned)
            status = SagaStatus.RUNNING if following else SagaStatus.COMPLETED
            action = StepAction.ACT
        return replace(
            record,
            status=status,
            step=following,
            action=action,
            attempts=0,
            version=record.version + 1,
            owner=self.owner if following else None,
            error=record.error if compensate else None,
            log=log,
        )

    async def _failed(
        self,
        plan: Plan,
        planned: PlannedStep,
        record: SagaRecord,
        error: Exception,
        *,
        compensate: bool,
    ) -> SagaRecord | None:
        """Record a failed attempt: retry later, take the fallback, compensate, or park."""
        attempt = record.attempts + 1
        text = describe(error)
        kind = SagaLogKind.COMPENSATION_FAILED if compensate else SagaLogKind.FAILED
        # An open breaker gives up at once (logged, so recovery resumes the branch it chose);
        # after the pivot, where nothing is given up, it is a failed attempt like any other.
        circuit = not compensate and circuit_opened(planned.step, error)
        kind = SagaLogKind.CIRCUIT_OPEN if circuit else kind
        log = (*record.log, SagaLogEntry(planned.name, kind, attempt, self.registry.clock(), text))
        policy = plan.compensation_retry if compensate else planned.retry
        logger.warning(
            "saga %s (%s): %s of step %s failed (attempt %d of %d): %s",
            record.saga_id,
            record.name,
            "compensation" if compensate else "attempt",
            planned.name,
            attempt,
            policy.max_attempts,
            text,
        )
        failed = replace(record, attempts=attempt, error=text, log=log, version=record.version + 1)
        if not policy.exhausted(attempt) and not (circuit and not planned.forward_only):
            delay = policy.delay(attempt)
            if await self._write(replace(failed, owner=None), due_in=delay):
                self.wake_at(delay)
            return None
        if compensate or planned.forward_only:
            await self._park(replace(record, attempts=attempt, log=log), planned.name, text)
            return None
        if planned.fallback is not None:
            new = replace(failed, step=planned.fallback, attempts=0, owner=self.owner)
            return new if await self._write(new) else None
        try:
            following = plan.to_compensate(log)
        except KeyError as missing:
            missed = _missing(record, plan, missing)
            await self._park(replace(record, attempts=attempt, log=log), planned.name, missed)
            return None
        new = replace(
            failed,
            status=SagaStatus.COMPENSATING if following else SagaStatus.COMPENSATED,
            step=following,
            action=StepAction.COMPENSATE,
            attempts=0,
            owner=self.owner if following else None,
        )
        written = await self._write(new)
        return new if written and following else None

    async def _park(self, record: SagaRecord, step: str, error: str) -> None:
        """Stop the instance where it is, as failed, with ``error``; nobody holds it."""
        entry = SagaLogEntry(
            step, SagaLogKind.PARKED, record.attempts, self.registry.clock(), error
        )
        parked = replace(
            record,
            status=SagaStatus.FAILED,
            error=error,
            log=(*record.log, entry),
            version=record.version + 1,
            owner=None,
        )
        if await self._write(parked):
            logger.error("saga %s (%s): parked as failed: %s", record.saga_id, record.name, error)

    # -- plumbing -------------------------------------------------------------------------

    def _scope(self, record: SagaRecord, planned: PlannedStep) -> AsyncContainer:
        context = SagaStepContext(record.saga_id, record.name, planned.name, record.attempts + 1)
        return self._open_scope(context={SagaStepContext: context})

    async def _writer(self, scope: AsyncContainer) -> tuple[SagaWriter, UnitOfWork | None]:
        component = self.registry.component
        writer: SagaWriter = await scope.get(SagaWriter, component=component)
        if self._transactional is False:
            return writer, None
        try:
            uow: UnitOfWork = await scope.get(UnitOfWork, component=component)
        except NoFactoryError:
            self._transactional = False
            return writer, None
        self._transactional = True
        return writer, uow

    async def _write(self, record: SagaRecord, *, due_in: float = 0.0) -> bool:
        """Checkpoint ``record`` in a transaction of its own; ``False`` if refused."""
        try:
            async with self._open_scope() as scope:
                writer, uow = await self._writer(scope)
                await self._checkpoint(writer, record, due_in=due_in)
                if uow is not None:
                    await uow.commit()
        except _Refused:
            self._lost(record)
            return False
        except ExitError as error:
            outage = outage_of(error)
            if outage is not None:
                raise outage from error
            raise
        return True

    def _lost(self, record: SagaRecord) -> None:
        logger.warning(
            "saga %s (%s): checkpoint refused, another runner holds it now (this runner: %s)",
            record.saga_id,
            record.name,
            self.owner,
        )


def _missing(record: SagaRecord, plan: Plan, missing: KeyError) -> str:
    error = SagaVersionError(
        record.saga_id, record.name, record.definition_version, plan.saga.version, missing.args[0]
    )
    return describe(error)
