"""``app.messages``: which module handles which message, as data (for docs, CLIs, diagrams)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["HandlerInfo", "MessageInfo", "MessageRegistry"]


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    """One handler of a message type."""

    handler: type
    module: str
    """The name of the module that registered it (its dependencies are resolved there)."""
    behaviors: tuple[str, ...]
    """Every behavior around this handler, outermost first (global, per message, per handler)."""


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """A message type and the handlers registered for it directly."""

    message_type: type
    kind: str
    """``"request"``, ``"chain"``, ``"stream"`` or ``"event"``."""
    handlers: tuple[HandlerInfo, ...]
    """In registration order. For events, handlers of base classes are listed under the
    base; :meth:`MessageRegistry.event_handlers` gives all that receive a type."""
    tracked: bool = False
    """Whether a message of this type gets an envelope (ids, causation) while it is handled:
    something on its way (its handlers, their dependencies, its behaviors; for an event, its
    bases' handlers too) can read ``MessageContext``, write to the outbox, send or publish.
    ``MessagingSettings(track_context=...)`` overrides it for every type."""


@dataclass(frozen=True, slots=True)
class MessageRegistry:
    """Every message type some module handles, requests first, each kind in registration order."""

    messages: tuple[MessageInfo, ...]

    def __iter__(self) -> Iterator[MessageInfo]:
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)

    def get(self, message_type: type) -> MessageInfo | None:
        """The entry for exactly ``message_type``, if some handler names it."""
        for info in self.messages:
            if info.message_type is message_type:
                return info
        return None

    def event_handlers(self, event_type: type) -> tuple[HandlerInfo, ...]:
        """Every handler that receives ``event_type``: its own, then its bases', in MRO order."""
        by_type = {info.message_type: info for info in self.messages if info.kind == "event"}
        found: list[HandlerInfo] = []
        for cls in event_type.__mro__:
            info = by_type.get(cls)
            if info is not None:
                found.extend(info.handlers)
        return tuple(found)
