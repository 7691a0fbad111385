"""Error policies: what a consumer does when a handler raises, per handler and exception type."""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dockyard.exceptions import ConcurrencyError, StoreUnavailableError
from dockyard.retry import RetryPolicy

__all__ = [
    "ErrorPolicies",
    "ErrorPolicy",
    "Exhausted",
    "dead_letter",
    "discard",
    "failing_handler",
    "on_error",
    "retry_inline",
    "retry_later",
]

H = TypeVar("H", bound=type[Any])

_POLICIES = "__dockyard_error_policies__"


class Exhausted(enum.StrEnum):
    """What happens to a message once its policy gives up."""

    DEAD_LETTER = "dead_letter"
    DISCARD = "discard"


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    """How a failed message is retried, and what happens when retries run out.

    Attributes:
        inline_retries: Runs again at once, in a fresh scope, before anything else.
        inline_delay: Seconds between inline runs.
        retry_later: Redeliveries with backoff (the broker's, or the transport's delayed
            requeue); ``None``: none.
        then: ``DEAD_LETTER`` (kept, replayable) or ``DISCARD`` (acknowledged and logged).
    """

    inline_retries: int = 0
    inline_delay: float = 0.0
    retry_later: RetryPolicy | None = None
    then: Exhausted = Exhausted.DEAD_LETTER

    def __post_init__(self) -> None:
        if self.inline_retries < 0 or self.inline_delay < 0:
            msg = "ErrorPolicy.inline_retries and inline_delay must be >= 0"
            raise ValueError(msg)


def retry_inline(times: int, *, delay: float = 0.0, then: ErrorPolicy | None = None) -> ErrorPolicy:
    """Run the handlers again ``times`` times right away, then apply ``then`` (dead letter)."""
    after = then or dead_letter()
    return ErrorPolicy(times, delay, after.retry_later, after.then)


def retry_later(
    max_attempts: int = 5, *, initial_delay: float = 0.1, max_delay: float = 30.0
) -> ErrorPolicy:
    """Redeliver with exponential backoff; a dead letter after ``max_attempts`` deliveries.

    The waits are a ``RetryPolicy``'s: from ``initial_delay`` doubling up to ``max_delay``,
    jittered. Build ``ErrorPolicy(retry_later=RetryPolicy(...))`` to choose every field.
    """
    return ErrorPolicy(retry_later=RetryPolicy(max_attempts, initial_delay, max_delay=max_delay))


def dead_letter() -> ErrorPolicy:
    """Make the message a dead letter at once (kept with the reason; replayable)."""
    return ErrorPolicy()


def discard() -> ErrorPolicy:
    """Acknowledge and drop the message (logged): for errors that retrying cannot fix."""
    return ErrorPolicy(then=Exhausted.DISCARD)


def _transient() -> Mapping[type[BaseException], ErrorPolicy]:
    # Infrastructure hiccups: two quick tries, then backoff for a while, then a dead letter.
    policy = ErrorPolicy(
        inline_retries=2,
        inline_delay=0.05,
        retry_later=RetryPolicy(max_attempts=10, initial_delay=0.5, max_delay=60.0),
    )
    return types.MappingProxyType(
        {
            ConnectionError: policy,
            TimeoutError: policy,
            StoreUnavailableError: policy,
            ConcurrencyError: policy,
        }
    )


def _default() -> ErrorPolicy:
    return retry_later()


@dataclass(frozen=True, slots=True)
class ErrorPolicies:
    """An endpoint's policies: by exception type, with a default for everything else.

    The safe defaults: transient errors (``ConnectionError``, ``TimeoutError``,
    ``StoreUnavailableError``, ``ConcurrencyError``) are retried inline twice, then later
    with backoff up to 10 deliveries; any other error is retried later up to 5 deliveries;
    then the message is a dead letter. Nothing is dropped unless a policy says ``discard()``.
    Policies a handler declares with ``@on_error`` win over these.
    """

    by_exception: Mapping[type[BaseException], ErrorPolicy] = field(default_factory=_transient)
    default: ErrorPolicy = field(default_factory=_default)

    def for_error(self, error: BaseException, handler: type[Any] | None = None) -> ErrorPolicy:
        """The policy for ``error`` raised by ``handler`` (most specific exception type wins)."""
        if handler is not None:
            found = _lookup(getattr(handler, _POLICIES, None) or {}, error)
            if found is not None:
                return found
        return _lookup(self.by_exception, error) or self.default

    def with_policy(
        self, exception_type: type[BaseException], policy: ErrorPolicy
    ) -> ErrorPolicies:
        """A copy where ``exception_type`` (and its subclasses) follow ``policy``."""
        return ErrorPolicies({**self.by_exception, exception_type: policy}, self.default)


def _lookup(
    table: Mapping[type[BaseException], ErrorPolicy], error: BaseException
) -> ErrorPolicy | None:
    for kind in type(error).__mro__:
        found = table.get(kind)
        if found is not None:
            return found
    return None


def on_error(*exception_types: type[BaseException], policy: ErrorPolicy) -> Callable[[H], H]:
    """Declare a handler's policy for some exception types (a class decorator).

    Example:
        ```text
        @on_error(CardDeclined, policy=discard())
        @on_error(GatewayTimeout, policy=retry_inline(3, then=retry_later(10)))
        class ChargeCard(EventHandler[OrderPlaced]): ...
        ```
    """
    if not exception_types:
        msg = "on_error() needs at least one exception type"
        raise TypeError(msg)

    def decorate(handler: H) -> H:
        table = dict(handler.__dict__.get(_POLICIES, {}))
        for kind in exception_types:
            table[kind] = policy
        setattr(handler, _POLICIES, types.MappingProxyType(table))
        return handler

    return decorate


def failing_handler(error: BaseException) -> type[Any] | None:
    """The class of the innermost handler (declaring policies) in ``error``'s traceback."""
    found: type[Any] | None = None
    tb = error.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if owner is not None and getattr(type(owner), _POLICIES, None) is not None:
            found = type(owner)
        tb = tb.tb_next
    return found
