"""One message for one process manager instance: load it held, run its handler, write it back.

Each message type a process manager takes gets an ``EventHandler`` made here (``entry_for``),
so whatever publishes it — ``IPublisher`` in-process, a consumer after its inbox — feeds the
instance in the same scope and transaction as everything else the message does.
"""

from __future__ import annotations

import logging
import re
import types
from dataclasses import dataclass
from typing import Any, ClassVar

from dishka import AsyncContainer

from dockyard.consumer._policies import dead_letter, on_error
from dockyard.exceptions import ConcurrencyError, ProcessNotFoundError, ProcessVersionError
from dockyard.messaging._envelope import CURRENT
from dockyard.messaging._handlers import EventHandler
from dockyard.outbox._outbox import Outbox
from dockyard.sagas._process import Process, ProcessManager, ProcessRoute, RouteKind
from dockyard.sagas._process_store import ProcessRecord, ProcessStatus, ProcessWriter
from dockyard.serialization import Serializer

__all__ = ["ProcessRegistry", "ProcessRuntime", "entry_for"]

logger = logging.getLogger("dockyard.sagas.processes")


@dataclass(slots=True, eq=False)
class ProcessRegistry:
    """The process managers of one registration, their codec and the module's component."""

    processes: dict[str, ProcessManager[Any]]
    serializer: Serializer
    component: str = ""
    """The Dishka component of the module, recorded when the app starts."""


class ProcessRuntime:
    """Applies messages to process manager instances in the current scope (scoped)."""

    __slots__ = ("_container", "_registry", "_writer")
    __dockyard_reads_envelope__ = True
    """A timeout is recognised by its message id, and an instance may be keyed by the
    correlation id: the envelope of the message must be tracked."""

    def __init__(
        self, writer: ProcessWriter, registry: ProcessRegistry, container: AsyncContainer
    ) -> None:
        self._writer = writer
        self._registry = registry
        self._container = container

    async def apply(
        self, process: ProcessManager[Any], route: ProcessRoute, message: object
    ) -> None:
        """Run ``route``'s handler on the instance ``message`` belongs to, and write it back."""
        envelope = CURRENT.get()
        key = route.key_of(message, envelope)
        record = await self._writer.load(process.name, key)
        serializer = self._registry.serializer
        what = type(message).__qualname__
        timeout_id: str | None = None
        if record is None:
            if route.kind is not RouteKind.START:
                self._missing(process, key, what)
                return
            instance: Process[Any] = Process(process.name, key, process.new_state(), created=True)
        else:
            if record.status is not ProcessStatus.ACTIVE:  # completed or cancelled
                logger.info(
                    "process %s %s: %s, %s ignored", process.name, key, record.status, what
                )  # fmt: skip
                return
            if not process.accepts(record.definition_version):  # never to handlers it did not
                raise ProcessVersionError(  # start with, nor stored over as the new version
                    process.name, key, record.definition_version, process.version, what
                )
            timeout_id = record.timeout_id
            if route.kind is RouteKind.TIMEOUT:
                message_id = envelope.message_id if envelope is not None else None
                if timeout_id is None or message_id != timeout_id:
                    logger.info(
                        "process %s %s: %s %s is not its pending timeout, ignored",
                        process.name, key, what, message_id,
                    )  # fmt: skip
                    return
                timeout_id = None  # it fires now: nothing left to cancel
            state = serializer.deserialize(record.state_type, record.state_schema, record.state)
            instance = Process(process.name, key, state, created=False)
        handler = await self._container.get(route.handler, component=self._registry.component)
        await handler.handle(message, instance)
        timeout_id, timeout_at = await self._timeouts(process, instance, record, timeout_id)
        serialized = serializer.serialize(instance.state)
        new = ProcessRecord(
            name=process.name,
            key=key,
            definition_version=process.version,
            status=ProcessStatus.COMPLETED if instance.completed else ProcessStatus.ACTIVE,
            state_type=serialized.type_name,
            state_schema=serialized.schema_version,
            state=serialized.data,
            version=1 if record is None else record.version + 1,
            timeout_id=timeout_id,
            timeout_at=timeout_at,
        )
        if not await self._writer.save(new):
            # Only two creations of one key at once get here (loads are held): the loser's
            # scope rolls back, and a consumer retries it in a fresh scope, which finds it.
            raise ConcurrencyError(f"process {process.name}/{key}", new.version - 1, new.version)

    async def _timeouts(
        self,
        process: ProcessManager[Any],
        instance: Process[Any],
        record: ProcessRecord | None,
        pending: str | None,
    ) -> tuple[str | None, float | None]:
        """Cancel and schedule timeouts as the handler asked; the instance's new pending one."""
        requested = instance._requested  # noqa: SLF001 - the runtime reads what the handler set
        cancel = instance._cancel or instance.completed  # noqa: SLF001
        if pending is not None and (cancel or requested is not None):
            outbox = await self._outbox()
            await outbox.cancel(pending)
            pending = None
        if requested is None or instance.completed:
            if pending is None:
                return None, None
            return pending, record.timeout_at if record is not None else None
        message, due = requested
        outbox = await self._outbox()
        destination = process.timeout_destination or ""
        message_id = await outbox.add(message, destination=destination, deliver_at=due)
        return message_id, due

    async def _outbox(self) -> Outbox:
        outbox: Outbox = await self._container.get(Outbox, component=self._registry.component)
        return outbox

    def _missing(self, process: ProcessManager[Any], key: str, what: str) -> None:
        if process.missing == "dead_letter":
            raise ProcessNotFoundError(process.name, key, what)
        logger.warning("process %s: no active instance %s, %s ignored", process.name, key, what)


class _ProcessEntry:
    """The event handler of one message type of one process manager (subclassed per type)."""

    __slots__ = ("_runtime",)
    process: ClassVar[ProcessManager[Any]]
    route: ClassVar[ProcessRoute]

    def __init__(self, runtime: ProcessRuntime) -> None:
        self._runtime = runtime

    async def handle(self, event: object, /) -> None:
        await self._runtime.apply(self.process, self.route, event)


def entry_for(process: ProcessManager[Any], route: ProcessRoute) -> type:
    """An ``EventHandler[route.message]`` that applies it to ``process``."""
    name = re.sub(r"\W", "_", f"{process.name}_{route.message.__qualname__}_process")

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(process=process, route=route, __slots__=(), __module__=__name__)

    entry = types.new_class(name, (_ProcessEntry, EventHandler[route.message]), {}, body)  # type: ignore[name-defined]
    # what a redelivery cannot change: a consumer dead-letters it at once
    refused: tuple[type[Exception], ...] = (ProcessVersionError,)
    if process.missing == "dead_letter":
        refused += (ProcessNotFoundError,)
    return on_error(*refused, policy=dead_letter())(entry)
