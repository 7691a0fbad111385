"""Message ids on log records: a context variable and a log record factory.

The consumer (around each delivery) and the relay (around each message it publishes or fails
to) set the fields of the message at hand; every ``LogRecord`` made meanwhile in that task —
dockyard's own and the user's handlers', whatever their logger — gets them as attributes,
the way ``extra`` would put them, so ``%(dockyard_message_id)s`` and JSON formatters see them.

Outside a message (``app.send`` in a web request, startup, shutdown) nothing is set and a record
costs one ``ContextVar.get`` more; ``app.send`` itself never touches the variable. Records are
only made for enabled levels, so a disabled ``DEBUG`` line costs nothing here either.

Do not pass ``dockyard_*`` keys in ``extra`` inside a message: ``logging`` refuses to overwrite
an attribute the record has already (``KeyError``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Protocol

__all__ = ["FIELDS", "log_fields", "message_fields", "message_scope"]

FIELDS = (
    "dockyard_message_id",
    "dockyard_message_type",
    "dockyard_correlation_id",
    "dockyard_causation_id",
    "dockyard_destination",
    "dockyard_service",
)
"""The attributes set on records made while a message is handled or published."""

_CORRELATION_ID = "correlation-id"  # dockyard.transport.CORRELATION_ID (no import cycle here)
_CAUSATION_ID = "causation-id"


class _Message(Protocol):
    @property
    def message_id(self) -> str: ...
    @property
    def type_name(self) -> str: ...
    @property
    def destination(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


# The message and the service, not the fields: a scope is one ``set`` and one ``reset``; the
# fields are only built for the records actually made.
_current: ContextVar[tuple[_Message, str] | None] = ContextVar("dockyard_log_fields", default=None)


def message_fields(message: _Message, service: str) -> dict[str, str]:
    """The record attributes for ``message`` (a ``TransportMessage`` or ``OutboxMessage``),
    handled or published by the background service named ``service``."""
    headers = message.headers
    return {
        "dockyard_message_id": message.message_id,
        "dockyard_message_type": message.type_name,
        "dockyard_correlation_id": headers.get(_CORRELATION_ID, ""),
        "dockyard_causation_id": headers.get(_CAUSATION_ID, ""),
        "dockyard_destination": message.destination,
        "dockyard_service": service,
    }


class message_scope:  # noqa: N801 - used like a function: ``with message_scope(m, name):``
    """Records made inside (in this task and the tasks it starts) carry ``message``'s fields."""

    __slots__ = ("_token", "_value")

    def __init__(self, message: _Message, service: str) -> None:
        self._value = (message, service)

    def __enter__(self) -> None:
        self._token = _current.set(self._value)

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


def log_fields() -> Mapping[str, str]:
    """The fields records get now (empty outside a message)."""
    current = _current.get()
    return {} if current is None else message_fields(*current)


def _install() -> None:
    previous = logging.getLogRecordFactory()
    if getattr(previous, "dockyard_log_fields", False):  # a reload: once is enough
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        current = _current.get()
        if current is not None:
            record.__dict__.update(message_fields(*current))
        return record

    factory.dockyard_log_fields = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


_install()
