"""Dispatch errors: what ``send``, ``stream`` and ``MessageContext`` raise at run time."""

from __future__ import annotations

from collections.abc import Sequence

from dockyard._errors.base import DockyardError
from dockyard._type_name import type_name

__all__ = [
    "ChainExhaustedError",
    "CircuitOpenError",
    "HandlerNotFoundError",
    "MessageContextError",
    "MessagingError",
]


class MessagingError(DockyardError):
    """A message could not be dispatched: no handler answers it, or no context is there."""


def _close_names(name: str, candidates: Sequence[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)


class HandlerNotFoundError(MessagingError, LookupError):
    """``send`` or ``stream`` got a request type that no registered handler answers."""

    def __init__(
        self,
        message_type: type,
        operation: str,
        registered: Sequence[str],
        *,
        handled_by: str | None = None,
        declared_elsewhere: Sequence[str] = (),
    ) -> None:
        self.message_type = message_type
        self.operation = operation
        self.registered = tuple(registered)
        self.handled_by = handled_by
        """What kind of handler the type does have (e.g. "a stream handler"), if any."""
        self.declared_elsewhere = tuple(declared_elsewhere)
        """Handlers of the type in modules this app does not import (``"`H` in module `M`
        (pkg.mod)"``)."""
        super().__init__(
            message_type, operation, self.registered, handled_by, self.declared_elsewhere
        )

    def __str__(self) -> str:
        name = type_name(self.message_type)
        if self.handled_by is not None:
            other = "stream" if self.operation == "send" else "send"
            return (
                f"`{self.operation}` got `{name}`, which is handled by {self.handled_by}. "
                f"Hint: use `{other}(...)` for `{name}`."
            )
        if self.operation == "run_handler":
            known = ", ".join(f"`{r}`" for r in self.registered) or "none"
            return (
                f"`run_handler` got `{name}` for a handler this app does not run out of band "
                f"(those it does: {known}). Hint: list `out_of_band(Handler, "
                "destination=...)` in a module's `handlers=[...]`."
            )
        base = "StreamHandler" if self.operation == "stream" else "RequestHandler"
        text = f"No handler for `{name}` is registered."
        if self.declared_elsewhere:
            modules = [
                d.split(" in module ", 1)[1].split(" (", 1)[0] for d in self.declared_elsewhere
            ]
            return (
                f"{text} {', '.join(self.declared_elsewhere)} "
                f"{'handles' if len(modules) == 1 else 'handle'} it, but this app does not "
                f"import {'that module' if len(modules) == 1 else 'those modules'}: a module's "
                "handlers are registered only when the root module imports it (directly or "
                f"through another module). Hint: add {' or '.join(dict.fromkeys(modules))} to "
                "the root module's `imports=[...]`."
            )
        close = _close_names(name, self.registered)
        if close:
            text += " Did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
        return text + (
            f" Hint: add a `{base}[{name}, ...]` subclass to some module's `handlers=[...]`."
        )


class ChainExhaustedError(MessagingError, LookupError):
    """Every link of a chain of responsibility passed the request on."""

    def __init__(self, message_type: type, links: Sequence[str]) -> None:
        self.message_type = message_type
        self.links = tuple(links)
        super().__init__(message_type, self.links)

    def __str__(self) -> str:
        chain = " → ".join(f"`{link}`" for link in self.links)
        return (
            f"Every handler in the chain for `{type_name(self.message_type)}` passed it on "
            f"({chain}). Hint: end the chain with a handler that always answers."
        )


class MessageContextError(MessagingError, LookupError):
    """``MessageContext`` was read where there is no message, or with tracking off."""

    def __init__(self, *, tracking: bool) -> None:
        self.tracking = tracking
        super().__init__(tracking)

    def __str__(self) -> str:
        if self.tracking:
            return (
                "No message is being handled here, or the message being handled is of a type "
                "that is not tracked, so there is no message context. Hint: read "
                "`MessageContext` inside a handler's or a behavior's `handle`, depending on it "
                "in their constructor (that makes their message types tracked), or build with "
                "`messaging=MessagingSettings(track_context=True)`."
            )
        return (
            "Message context tracking is off: nothing in the app declared a dependency on "
            "`MessageContext` when it was built. Hint: inject `MessageContext` in a constructor, "
            "or build with `messaging=MessagingSettings(track_context=True)`."
        )


class CircuitOpenError(MessagingError, RuntimeError):
    """A ``CircuitBreaker`` is open: the call was not made (it fails fast)."""

    def __init__(self, breaker: str, failures: int, retry_in: float) -> None:
        self.breaker = breaker
        self.failures = failures
        self.retry_in = retry_in
        """Seconds until the breaker lets a probe call through."""
        super().__init__(breaker, failures, retry_in)

    def __str__(self) -> str:
        return (
            f"Circuit breaker `{self.breaker}` is open after {self.failures} failures in a "
            f"row, so the call was not made; a probe call is let through in "
            f"{self.retry_in:.1f} s. Hint: the dependency behind `{self.breaker}` is failing; "
            "fix it or wait, or give the caller a fallback."
        )
