"""``Endpoint`` and ``listen()``: what an app receives, as which group, how."""

from __future__ import annotations

from dataclasses import dataclass, field

from dockyard.consumer._policies import ErrorPolicies

__all__ = ["DEFAULT_MAX_PAYLOAD", "Endpoint", "listen"]

DEFAULT_MAX_PAYLOAD = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What an app receives: ``destination``'s messages, as consumer group ``group``.

    Attributes:
        destination: As the producer routes it (``route(E).to("rabbit://orders")``).
        group: The consumer group: each group gets every message once, its consumers share
            them. Also the name under which the inbox records handled messages.
        concurrency: Messages handled at once (the subscription's prefetch). Above 1, the
            broker hands messages out concurrently: per-key order holds only at 1.
        policies: What to do when a handler raises (retries, dead letter, discard).
        max_payload: Bigger payloads are dead letters, not decoded.
    """

    destination: str
    group: str
    concurrency: int = 1
    policies: ErrorPolicies = field(default_factory=ErrorPolicies)
    max_payload: int = DEFAULT_MAX_PAYLOAD

    def __post_init__(self) -> None:
        if not self.destination or not self.group:
            msg = "listen() needs a destination and a group"
            raise ValueError(msg)
        if self.concurrency < 1 or self.max_payload < 1:
            msg = "Endpoint.concurrency and max_payload must be >= 1"
            raise ValueError(msg)

    @property
    def name(self) -> str:
        """The consumer's name in the worker, its logs and its dead letters' ``last_error``."""
        return f"consumer:{self.destination}:{self.group}"


def listen(
    destination: str,
    *,
    group: str,
    concurrency: int = 1,
    policies: ErrorPolicies | None = None,
    max_payload: int = DEFAULT_MAX_PAYLOAD,
) -> Endpoint:
    """Receive ``destination``'s messages as consumer group ``group`` in the worker.

    Example: ``ConsumerModule.register(endpoints=[listen("orders", group="billing")])``.
    """
    return Endpoint(destination, group, concurrency, policies or ErrorPolicies(), max_payload)
