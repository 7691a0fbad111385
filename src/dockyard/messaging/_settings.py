"""``MessagingSettings``: app-wide messaging configuration given to ``App.build``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["BehaviorLike", "EventDelivery", "MessagingSettings"]

BehaviorLike = Any
"""A ``PipelineBehavior`` instance, or a ``PipelineBehavior`` subclass built per scope."""


@dataclass(frozen=True, slots=True)
class EventDelivery:
    """How one event reaches its handlers.

    Sequential (the default): in order; the first error stops the rest and propagates.
    Concurrent: all at once, at most ``limit`` at a time (``None``: no limit); every handler
    runs, and their errors are raised together in an ``ExceptionGroup``.
    """

    concurrent: bool = False
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            msg = f"EventDelivery limit must be at least 1, got {self.limit}"
            raise ValueError(msg)
        if self.limit is not None and not self.concurrent:
            msg = "EventDelivery limit applies to concurrent delivery only"
            raise ValueError(msg)


def _frozen(mapping: Mapping[type, Any]) -> Mapping[type, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True, kw_only=True)
class MessagingSettings:
    """Messaging configuration: ``App.build(Root, messaging=MessagingSettings(...))``.

    Attributes:
        behaviors: Global behaviors, outermost first; each applies to the messages its
            ``PipelineBehavior[M, R]`` parameter ``M`` matches.
        message_behaviors: Behaviors for a message type and its subclasses (e.g. ``Command``).
        handler_behaviors: Behaviors for one handler class.
        event_delivery: How events reach their handlers, app-wide.
        event_delivery_for: Per event type (and its subclasses), overriding ``event_delivery``.
        track_context: Track envelopes (ids, causation) for ``MessageContext`` and the
            outbox, for every message type (``True``) or none (``False``). ``None``: per type,
            only for those whose handlers or behaviors can reach ``MessageContext``,
            ``Outbox`` (every ``route(...).to(...)`` does), a sender or publisher, or
            something it cannot see through (``app.messages`` says which); costs an envelope
            and a context variable per tracked message (measured: docs/design/dispatch.md).
    """

    behaviors: Sequence[BehaviorLike] = ()
    message_behaviors: Mapping[type, Sequence[BehaviorLike]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    handler_behaviors: Mapping[type, Sequence[BehaviorLike]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    event_delivery: EventDelivery = EventDelivery()
    event_delivery_for: Mapping[type, EventDelivery] = field(
        default_factory=lambda: MappingProxyType({})
    )
    track_context: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "behaviors", tuple(self.behaviors))
        object.__setattr__(
            self,
            "message_behaviors",
            _frozen({k: tuple(v) for k, v in self.message_behaviors.items()}),
        )
        object.__setattr__(
            self,
            "handler_behaviors",
            _frozen({k: tuple(v) for k, v in self.handler_behaviors.items()}),
        )
        object.__setattr__(self, "event_delivery_for", _frozen(self.event_delivery_for))
