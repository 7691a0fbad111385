"""``RemoteStep``: a saga step answered by another service, and how its step is declared."""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Any, TypeVar

from dockyard._type_name import type_name
from dockyard.sagas._step import SagaStep

__all__ = [
    "AWAITING_REPLY",
    "IDEMPOTENCY_KEY",
    "SAGA_ID",
    "SAGA_NAME",
    "SAGA_STEP",
    "Remote",
    "RemoteStep",
    "remote_problems",
]

S = TypeVar("S")

SAGA_ID = "dockyard-saga-id"
"""Header of a remote step's command (and of its reply): the instance's id."""
SAGA_NAME = "dockyard-saga"
"""Header: the saga's name."""
SAGA_STEP = "dockyard-saga-step"
"""Header: the step that waits for the reply."""
IDEMPOTENCY_KEY = "idempotency-key"
"""Header: ``name:saga_id:step``, the same on every send of the step."""
AWAITING_REPLY = "awaiting-reply"
"""The owner of an instance waiting for a reply; its lease ends at the step's timeout."""


@dataclass(frozen=True, slots=True)
class Remote:
    """How a remote step sends its command and which replies it waits for."""

    destination: str
    """Where the command is published (a route of the outbox's transport)."""
    replies: tuple[type, ...]
    """Reply types that complete the step (``on_reply`` runs)."""
    failures: tuple[type, ...]
    """Reply types that fail the step's attempt (retry, fallback, compensation)."""
    timeout: float
    """Seconds to wait for a reply after each send before the attempt fails."""


class RemoteStep(SagaStep[S]):
    """A step done by another service: its command goes through the outbox, in the step's
    transaction, and the saga resumes when the reply comes back through a consumer.

    Declare it with :func:`dockyard.sagas.remote`. Constructor parameters are injected.

    Example:
        ```python
        class RequestShipment(RemoteStep[Checkout]):
            async def command(self, state: Checkout) -> object:
                return ShipOrder(state.order_id)

            async def on_reply(self, state: Checkout, reply: Shipped) -> None:
                state.tracking = reply.tracking
        ```
    """

    __slots__ = ()

    @abc.abstractmethod
    async def command(self, state: S, /) -> object:
        """The message to send (anything the outbox's serializer encodes). Read the state,
        do not change it: the step's state changes are ``on_reply``'s, so that retries and the
        fallback start from the state before the step, as for any step."""

    async def on_reply(self, state: S, reply: Any, /) -> None:
        """Apply a success reply to the state; runs in the reply's transaction (with the inbox
        record and the checkpoint). Raising leaves the reply to the consumer's error policy."""

    async def act(self, state: S, /) -> None:  # noqa: ARG002 - the signature of every step
        """Not called: the saga engine sends :meth:`command` instead."""
        msg = f"`{type_name(type(self))}` is a remote step: declare it with `remote(...)`"
        raise TypeError(msg)


def remote_problems(where: str, name: str, handler: object, spec: object) -> list[str]:
    """What keeps a remote step (or a remote handler in a plain step) from running."""
    is_remote = isinstance(handler, type) and issubclass(handler, RemoteStep)
    if spec is None:
        if is_remote:
            return [
                (
                    f"{where}: step `{name}` is run by `{type_name(handler)}`, a `RemoteStep`; "
                    f"declare it with `remote({name!r}, {type_name(handler)}, destination=..., "
                    "replies=[...], timeout=...)`"
                )
            ]
        return []
    found: list[str] = []
    if not isinstance(spec, Remote):
        return [f"{where}: step `{name}` has a remote spec that is not a `Remote`"]
    if not is_remote:
        found.append(
            f"{where}: the remote step `{name}` is run by `{type_name(handler)}`, which is not "
            "a `RemoteStep` subclass"
        )
    destination: object = spec.destination
    if not isinstance(destination, str) or not destination.strip():
        found.append(f"{where}: the remote step `{name}` has no destination for its command")
    if not spec.replies:
        found.append(f"{where}: the remote step `{name}` names no reply type in `replies`")
    declared: tuple[object, ...] = (*spec.replies, *spec.failures)  # data: check it
    found.extend(
        f"{where}: the remote step `{name}` lists `{type_name(reply)}` as a reply type, "
        "which is not a class"
        for reply in declared
        if not isinstance(reply, type)
    )
    both = set(spec.replies) & set(spec.failures)
    if both:
        listed = ", ".join(sorted(f"`{type_name(t)}`" for t in both))
        found.append(
            f"{where}: the remote step `{name}` lists {listed} in both `replies` and `failures`"
        )
    timeout: object = spec.timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        found.append(
            f"{where}: the remote step `{name}` has timeout {timeout!r}; give the seconds to "
            "wait for a reply (a finite number > 0)"
        )
    return found
