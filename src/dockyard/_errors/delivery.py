"""Brokers and listeners: a message not accepted, a broker out of reach, a message refused."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dockyard._errors.base import DockyardError

__all__ = [
    "BatchPublishError",
    "BrokerPublishError",
    "DeliveryError",
    "MessageRejectedError",
    "TransportUnavailableError",
]


class DeliveryError(DockyardError):
    """A message could not be handed to a broker, or a received one cannot be handled."""


class BrokerPublishError(DeliveryError, ConnectionError):
    """A broker refused a message (a negative confirm, or no queue to route it to)."""

    def __init__(self, transport: str, destination: str, reason: str) -> None:
        self.transport = transport
        self.destination = destination
        self.reason = reason
        super().__init__(transport, destination, reason)

    def __str__(self) -> str:
        return (
            f"The {self.transport} broker refused a message for `{self.destination}`: "
            f"{self.reason}. The relay retries it. Hint: declare the consumer group first "
            "(`await transport.declare(destination, group)`, or start the consuming app), "
            "and check the broker's limits (max message size, disk and memory alarms)."
        )


class BatchPublishError(DeliveryError, ConnectionError):
    """Some messages of a ``publish_many`` call were not accepted; the others were.

    Attributes:
        transport: The transport's scheme, e.g. ``"rabbit"``.
        failed: Message id → why the transport did not accept it.
        held_back: Ids not published because an earlier message of their key failed.
    """

    def __init__(
        self,
        transport: str,
        failed: Mapping[str, BaseException],
        held_back: Sequence[str] = (),
    ) -> None:
        self.transport = transport
        self.failed = dict(failed)
        self.held_back = tuple(held_back)
        super().__init__(transport, self.failed, self.held_back)

    def __str__(self) -> str:
        shown = list(self.failed.items())[:3]
        reasons = "; ".join(f"{m} ({type(e).__name__}: {e})" for m, e in shown)
        rest = len(self.failed) - len(shown)
        more = f"; and {rest} more" if rest else ""
        held = (
            f" {len(self.held_back)} later messages of their keys were held back."
            if self.held_back
            else ""
        )
        return (
            f"The {self.transport} transport did not accept {len(self.failed)} messages of a "
            f"batch: {reasons}{more}.{held} Every other message was accepted; the relay retries "
            "these. Hint: see each message's error (a refused destination, a broker limit, a "
            "lost connection)."
        )


class TransportUnavailableError(DeliveryError, ConnectionError):
    """The broker could not be reached (connection down, no answer): nothing was refused.

    The relay does not count this against a message: it pauses until the broker answers.
    """

    def __init__(self, transport: str, reason: str) -> None:
        self.transport = transport
        self.reason = reason
        super().__init__(transport, reason)

    def __str__(self) -> str:
        return (
            f"The {self.transport} broker is unavailable: {self.reason}. Nothing was refused: "
            "the relay pauses and publishes again once the broker answers, without counting "
            "an attempt against any message. Hint: check that the broker runs and is reachable "
            "from this process (URL, network, credentials)."
        )


class MessageRejectedError(DeliveryError, ValueError):
    """A received message cannot be handled at all (it becomes a dead letter at once)."""

    def __init__(self, message_id: str, destination: str, problem: str) -> None:
        self.message_id = message_id
        self.destination = destination
        self.problem = problem
        super().__init__(message_id, destination, problem)

    def __str__(self) -> str:
        return (
            f"Message `{self.message_id}` from `{self.destination}` was rejected: "
            f"{self.problem}. It is a dead letter. Hint: publish through dockyard's outbox "
            "(which sets the `message-id`, `message-type` and `schema-version` headers), "
            "register the message class on the consumer, or raise `max_payload`."
        )
