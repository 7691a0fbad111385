"""``Destinations``: which outbox rows one relay claims, when an app has several transports.

An app with several transports runs one relay loop per transport (``docs/design/outbox-relay.md``,
"Several transports"); each claims only the destinations of its transport, so a slow or
unreachable broker holds back its own messages and no other's.
"""

from __future__ import annotations

import re
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from dockyard.outbox._store import ClaimedBatch

__all__ = ["TRANSPORT_NAME", "ClaimsByDestination", "Destinations"]

TRANSPORT_NAME = re.compile(r"[a-z][a-z0-9+.-]*")
"""What a transport's name may be: a URL scheme (no ``_`` or ``%``, so no ``LIKE`` escapes)."""


@dataclass(frozen=True, slots=True)
class Destinations:
    """The destinations one relay claims.

    Attributes:
        prefixes: Destination prefixes such as ``"nats://"``.
        exclude: ``False``: the destinations starting with one of ``prefixes``; ``True``:
            every other one (the default transport's: unprefixed ones, and its own scheme).
        scope: Added to each partition key before the claim takes its lock, so that relays of
            different transports never wait for each other's keys; ``""`` for the default
            transport (the lock a relay of an app with one transport takes).
    """

    prefixes: tuple[str, ...]
    exclude: bool = False
    scope: str = ""

    def __post_init__(self) -> None:
        for prefix in self.prefixes:
            if not prefix.endswith("://") or not TRANSPORT_NAME.fullmatch(prefix[:-3]):
                msg = f"Destinations prefix {prefix!r} is not a transport name and '://'"
                raise ValueError(msg)

    def matches(self, destination: str) -> bool:
        """Whether a relay with this filter claims messages to ``destination``."""
        return destination.startswith(self.prefixes) != self.exclude


@runtime_checkable
class ClaimsByDestination(Protocol):
    """An ``OutboxStore`` whose relays can claim some destinations only (optional; an app
    with several transports needs it: ``InMemoryOutboxStore`` and ``SqlOutboxStore`` have it).
    """

    def claim_destinations(
        self, destinations: Destinations, limit: int, now: float, /
    ) -> AbstractAsyncContextManager[ClaimedBatch]:
        """``OutboxStore.claim`` of the messages to ``destinations`` only.

        The order within a partition key holds per transport: a message of the key that
        another transport's relay holds, or retries, does not hold this claim back (the
        relays of two transports never wait for each other).
        """
        ...
