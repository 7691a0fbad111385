"""Settings of the relay, and the app-wide outbox configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.retry import RetryPolicy
from dockyard.serialization import Serializer

__all__ = ["OutboxConfig", "RelaySettings"]


def _relay_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=10, initial_delay=0.5, max_delay=300.0)


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """How a relay batches, waits, retries and cleans up."""

    batch_size: int = 500
    """Messages claimed (and held) per transaction."""
    pipeline: int = 2
    """Batches a relay keeps in flight: while one is published it claims the next, and
    records the last one's outcome. 1 is one batch after another. Only where the store's
    claims can overlap (PostgreSQL, memory); on SQLite a relay takes one batch at a time."""
    max_poll_interval: float = 0.2
    """Longest wait between polls when nothing wakes the relay (another process writes to
    SQLite, or the in-memory store); also the longest a relay that drains without a pause goes
    without looking for scheduled messages that came due."""
    idle_poll_interval: float = 5.0
    """With PostgreSQL ``LISTEN``: the safety poll while no notice arrives."""
    retry: RetryPolicy = field(default_factory=_relay_retry)
    """How a message the transport refused is retried, and when it becomes a dead letter:
    10 attempts, waits from 0.5 s doubling up to 300 s, jittered."""
    outage_pause: float = 0.5
    """Seconds the relay pauses when the transport is unavailable (the broker cannot be
    reached: ``TransportUnavailableError``). Such a failure is not the message's: no attempt
    is counted, the relay stops claiming and tries again after the pause, doubled (with
    jitter) after each try that finds the broker still unavailable."""
    max_outage_pause: float = 30.0
    """The longest pause between two tries while the transport is unavailable."""
    retention: float = 3600.0
    """Seconds delivered messages are kept (to inspect them) before they are deleted."""
    cleanup_interval: float = 60.0
    """Seconds between two deletions of delivered messages past their retention."""
    inbox_retention: float = 7 * 24 * 3600.0
    """Seconds the inbox remembers that a handler handled a message (7 days): a copy of it
    that arrives within that window is skipped; one that arrives later (a dead letter replayed
    after it) is handled again. The relay's cleanup deletes older records."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            msg = f"RelaySettings.batch_size must be >= 1, got {self.batch_size}"
            raise ValueError(msg)
        if self.pipeline < 1:
            msg = f"RelaySettings.pipeline must be >= 1, got {self.pipeline}"
            raise ValueError(msg)
        if self.max_poll_interval <= 0 or self.idle_poll_interval <= 0:
            msg = "RelaySettings poll intervals must be > 0"
            raise ValueError(msg)
        if self.outage_pause <= 0 or self.max_outage_pause < self.outage_pause:
            msg = "RelaySettings.outage_pause must be > 0 and max_outage_pause >= outage_pause"
            raise ValueError(msg)
        if self.retention < 0 or self.cleanup_interval <= 0 or self.inbox_retention < 0:
            msg = (
                "RelaySettings.retention and inbox_retention must be >= 0 and cleanup_interval > 0"
            )
            raise ValueError(msg)


class OutboxConfig:
    """What one ``OutboxModule`` registration shares between its services (provided app-wide)."""

    __slots__ = ("compress_above", "relay", "relays", "serializer")

    def __init__(
        self,
        serializer: Serializer,
        relay: RelaySettings,
        *,
        compress_above: int | None = None,
        relays: Mapping[str, RelaySettings] | None = None,
    ) -> None:
        if compress_above is not None and compress_above < 0:
            msg = f"compress_above must be >= 0 bytes (or None: never), got {compress_above}"
            raise ValueError(msg)
        self.serializer = serializer
        self.relay = relay
        """The relay settings of every transport not named in ``relays``."""
        self.relays: Mapping[str, RelaySettings] = dict(relays or {})
        """Relay settings by transport name (``OutboxModule.register(relays=...)``); the
        names are checked against the app's transports when the app is built."""
        self.compress_above = compress_above
        """Payloads over this many bytes are written gzip-compressed, with the
        ``content-encoding: gzip`` header (``None``: never compress)."""

    def relay_of(self, transport: str) -> RelaySettings:
        """The settings of the relay loop of the transport named ``transport``: its own, or
        the app-wide ``relay``."""
        return self.relays.get(transport, self.relay)
