"""Remote steps at run time: the command sent with the checkpoint, the reply applied with the
inbox record, and the failed attempt a timeout or a failure reply makes.

Design: ``docs/design/sagas.md`` (Remote steps).
"""

from __future__ import annotations

import logging
import time
import types
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any, TypeVar

from dishka import AsyncContainer

from dockyard._type_name import type_name
from dockyard.messaging import EventHandler
from dockyard.messaging._envelope import CURRENT
from dockyard.outbox import Outbox
from dockyard.retry import RetryPolicy
from dockyard.sagas._definition import Step
from dockyard.sagas._plan import Plan, PlannedStep
from dockyard.sagas._record import SagaLogEntry, SagaLogKind, SagaRecord, SagaStatus, StepAction
from dockyard.sagas._registry import SagaRegistry
from dockyard.sagas._remote_step import (
    AWAITING_REPLY,
    IDEMPOTENCY_KEY,
    SAGA_ID,
    SAGA_NAME,
    SAGA_STEP,
    Remote,
    RemoteStep,
)
from dockyard.sagas._store import SagaStore, SagaWriter

__all__ = [
    "FailureReplyError",
    "RemoteSender",
    "ReplyTimeoutError",
    "SagaReplies",
    "awaiting",
    "failed_wait",
    "remote",
    "remote_registrations",
]

S = TypeVar("S")

logger = logging.getLogger("dockyard.sagas")


def remote(
    name: str,
    handler: type[RemoteStep[S]],
    /,
    *,
    destination: str,
    replies: Iterable[type],
    failures: Iterable[type] = (),
    timeout: float | timedelta,
    retry: RetryPolicy | None = None,
    fallback: Step[S] | None = None,
    pivot: bool = False,
) -> Step[S]:
    """A step done by another service.

    ``handler.command(state)`` is written to the outbox for ``destination`` in the step's
    transaction, and the instance waits — no runner holds it — until a reply comes back
    through a consumer of this app: one of ``replies`` runs ``handler.on_reply`` and moves the
    saga on; one of ``failures``, or no reply within ``timeout``, fails the attempt, which is
    then retried (sent again, with the same idempotency key), falls back or compensates like
    any step. The reply must carry the command's ``dockyard-saga-*`` headers (a dockyard
    service replying while it handles the command does so by itself).

    Args:
        name: Stable name of the step, unique in its saga.
        handler: The ``RemoteStep`` class.
        destination: Where the command is published.
        replies: Reply types that complete the step.
        failures: Reply types that fail the attempt.
        timeout: How long to wait for a reply after each send (seconds or a ``timedelta``).
        retry: Sends before the fallback or compensation; ``None``: the saga's policy.
        fallback: Another step to run, from the pre-step state, once the retries ran out.
        pivot: Make it the saga's point of no return (see :func:`pivot`).
    """
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    spec = Remote(destination, tuple(replies), tuple(failures), seconds)
    return Step(name, handler, retry, fallback, pivot=pivot, remote=spec)


class ReplyTimeoutError(TimeoutError):
    """No reply came for a remote step's command within its timeout (a failed attempt)."""


class FailureReplyError(RuntimeError):
    """A remote step's command was answered by one of its ``failures`` types."""


# -- sending ----------------------------------------------------------------------------------


class RemoteSender:
    """Writes a remote step's command in the attempt's scope (provided when a saga has one:
    the app's build then checks that an ``Outbox`` is there)."""

    __slots__ = ("_outbox",)

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def send(
        self, handler: RemoteStep[Any], state: object, record: SagaRecord, planned: PlannedStep
    ) -> None:
        spec = planned.step.remote
        assert spec is not None
        key = f"{record.name}:{record.saga_id}:{planned.name}"
        command = await handler.command(state)
        await self._outbox.add(
            command,
            destination=spec.destination,
            # New for each send (a resend must not look like a redelivery to the receiver's
            # inbox) and the same if this attempt runs again after its rollback.
            message_id=f"{key}:{record.version}",
            headers={
                SAGA_ID: record.saga_id,
                SAGA_NAME: record.name,
                SAGA_STEP: planned.name,
                IDEMPOTENCY_KEY: key,
            },
        )


def awaiting(record: SagaRecord, planned: PlannedStep) -> SagaRecord:
    """The checkpoint after a send: held by ``AWAITING_REPLY`` (whose lease is the timeout)."""
    entry = SagaLogEntry(planned.name, SagaLogKind.SENT, record.attempts + 1, time.time())
    return replace(
        record,
        action=StepAction.AWAIT_REPLY,
        version=record.version + 1,
        owner=AWAITING_REPLY,
        error=None,
        log=(*record.log, entry),
    )


def failed_wait(record: SagaRecord, planned: PlannedStep) -> tuple[SagaRecord, Exception]:
    """A claimed instance that waited for a reply, to fail as an attempt of its step: a
    failure reply left its error; no error means the timeout passed."""
    spec = planned.step.remote
    error: Exception
    if record.error is not None:
        error = FailureReplyError(record.error)
    else:
        timeout = spec.timeout if spec is not None else 0.0
        error = ReplyTimeoutError(f"no reply to step `{planned.name}` within {timeout:g}s")
    return replace(record, action=StepAction.ACT), error


# -- receiving --------------------------------------------------------------------------------


class SagaReplies:
    """Applies a reply to the instance waiting for it, in the reply's scope (the consumer's:
    its inbox record commits with what this writes)."""

    __slots__ = ("_container", "_registry", "_store", "_writer")
    __dockyard_reads_envelope__ = True
    """The reply's headers say which instance and step it answers."""

    def __init__(
        self,
        writer: SagaWriter,
        store: SagaStore,
        registry: SagaRegistry,
        container: AsyncContainer,
    ) -> None:
        self._writer = writer
        self._store = store
        self._registry = registry
        self._container = container

    async def receive(self, reply: object) -> None:
        envelope = CURRENT.get()
        headers = envelope.headers if envelope is not None else {}
        saga_id, step = headers.get(SAGA_ID), headers.get(SAGA_STEP)
        kind = type_name(type(reply))
        if saga_id is None or step is None:
            logger.debug("a %s without saga headers: not a saga's reply", kind)
            return
        record = await self._writer.get(saga_id)
        if record is None:
            logger.warning(
                "saga %s: reply %s for step %s dropped: no such instance", saga_id, kind, step
            )
            return
        plan = self._registry.plans.get(record.name)
        planned = plan.get(step) if plan is not None else None
        spec = planned.step.remote if planned is not None else None
        if (
            plan is None
            or planned is None
            or spec is None
            or record.status is not SagaStatus.RUNNING
            or record.action is not StepAction.AWAIT_REPLY
            or record.step != step
            or record.owner != AWAITING_REPLY
        ):
            waiting = record.action is StepAction.AWAIT_REPLY
            logger.warning(
                "saga %s (%s): reply %s for step %s dropped: the instance is %s, %s step %s",
                saga_id, record.name, kind, step, record.status.value,
                "awaiting a reply of" if waiting else "not awaiting a reply, at", record.step,
            )  # fmt: skip
            return
        if isinstance(reply, spec.failures):
            new = replace(
                record,
                version=record.version + 1,
                owner=None,  # due now: a runner fails the attempt, as any failed attempt
                error=f"failure reply {kind}: {reply!r}",
            )
        elif isinstance(reply, spec.replies):
            new = await self._completed(plan, planned, record, reply)
        else:
            logger.warning(
                "saga %s (%s): reply %s dropped: step %s waits for %s",
                saga_id, record.name, kind, step,
                ", ".join(type_name(t) for t in (*spec.replies, *spec.failures)),
            )  # fmt: skip
            return
        if not await self._writer.checkpoint(new, owner=AWAITING_REPLY):
            # Another writer moved it between the read and now (a store without row locks):
            # roll the reply back; its redelivery finds the instance moved on and drops it.
            msg = f"saga {saga_id}: the reply's checkpoint was refused (it moved on)"
            raise RuntimeError(msg)
        runner = self._registry.runner_for(self._store)
        if runner is not None:
            runner.wake()

    async def _completed(
        self, plan: Plan, planned: PlannedStep, record: SagaRecord, reply: object
    ) -> SagaRecord:
        registry = self._registry
        state = registry.serializer.deserialize(
            record.state_type, record.state_schema, record.state
        )
        handler = await self._container.get(planned.step.handler, component=registry.component)
        await handler.on_reply(state, reply)
        serialized = registry.serializer.serialize(state)
        following = plan.after(planned)
        entry = SagaLogEntry(planned.name, SagaLogKind.COMPLETED, record.attempts + 1, time.time())
        return replace(
            record,
            status=SagaStatus.RUNNING if following else SagaStatus.COMPLETED,
            step=following,
            action=StepAction.ACT,
            attempts=0,
            state_type=serialized.type_name,
            state_schema=serialized.schema_version,
            state=serialized.data,
            version=record.version + 1,
            owner=None,
            error=None,
            log=(*record.log, entry),
        )


def _reply_handler(reply_type: type) -> type:
    """An ``EventHandler`` of ``reply_type`` that hands it to ``SagaReplies``."""

    def __init__(self: Any, replies: SagaReplies) -> None:  # noqa: N807 - a class body
        self.replies = replies

    async def handle(self: Any, reply: object, /) -> None:
        await self.replies.receive(reply)

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(__init__=__init__, handle=handle, __module__=__name__)

    name = f"SagaReplyHandler[{reply_type.__qualname__}]"
    return types.new_class(name, (EventHandler[reply_type],), {}, body)  # type: ignore[valid-type]


def remote_registrations(plans: Iterable[Plan]) -> tuple[list[type], list[type]]:
    """What ``SagasModule`` provides for its remote steps: scoped classes, reply handlers."""
    branches = [
        branch
        for plan in plans
        for primary in plan.saga.steps
        for branch in (primary, primary.fallback)
        if branch is not None
    ]
    specs = [branch.remote for branch in branches if branch.remote is not None]
    if not specs:
        return [], []
    reply_types = dict.fromkeys(t for spec in specs for t in (*spec.replies, *spec.failures))
    return [RemoteSender, SagaReplies], [_reply_handler(t) for t in reply_types]
