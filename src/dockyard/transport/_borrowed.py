"""The gate in front of a client library's private API that a transport's fast path borrows.

``RabbitTransport.publish_many`` fills aiormq's confirmation table itself and
``NatsTransport.publish_many`` writes its commands with nats-py's ``_send_command``: both
measured a third to a half less CPU per message than the clients' public publish (see
docs/design/borrowed-internals.md). Private APIs change without notice, so a fast path is
taken only when

* the library's installed release is one it was written against (``release_problem``), and
* the objects it reaches into have what it uses, as it uses them (``shape_problem``),

checked once, when the transport first publishes a batch. Otherwise the transport publishes
through the client's public API, one confirmed publish per message: slower, never wrong, and
said once in a warning (``chosen``).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Mapping
from importlib import metadata

__all__ = ["Check", "chosen", "coroutine_taking", "release", "release_problem", "shape_problem"]

logger = logging.getLogger("dockyard.transport")

Check = Callable[[object], bool]
"""Whether an attribute's value is what the fast path expects of it."""


def release(distribution: str) -> tuple[int, ...]:
    """The installed release of ``distribution`` as numbers (``(7, 2, 4)``); ``()`` if unknown."""
    try:
        text = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ()
    numbers = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(n) for n in numbers.group().split(".")) if numbers else ()


def release_problem(
    distribution: str,
    installed: tuple[int, ...],
    low: tuple[int, ...],
    high: tuple[int, ...],
    *,
    user: str = "the fast path",
) -> str | None:
    """Why ``installed`` is outside ``[low, high)``, the releases ``user`` knows; or ``None``."""
    if low <= installed < high:
        return None
    shown = ".".join(map(str, installed)) or "an unknown release"
    known = f"{'.'.join(map(str, low))} up to (not including) {'.'.join(map(str, high))}"
    return f"{distribution} is {shown}; {user} knows {known}"


def shape_problem(target: object, shape: Mapping[str, Check]) -> str | None:
    """Why ``target`` lacks what the fast path uses (an attribute per name, each passing its
    check); ``None`` if it has it all."""
    wrong = []
    for name, check in shape.items():
        try:
            value = getattr(target, name)
        except AttributeError:
            wrong.append(f"no `{name}`")
            continue
        if not check(value):
            wrong.append(f"`{name}` is {type(value).__name__}")
        del value
    if not wrong:
        return None
    return f"{type(target).__module__}.{type(target).__qualname__} has {', '.join(wrong)}"


def coroutine_taking(*arguments: object) -> Check:
    """A check: the value is a coroutine function that accepts ``arguments``."""

    def check(value: object) -> bool:
        if not inspect.iscoroutinefunction(value):
            return False
        try:
            inspect.signature(value).bind(*arguments)
        except (TypeError, ValueError):
            return False
        return True

    return check


def chosen(transport: object, fast_path: str, problem: str | None) -> bool:
    """Whether ``transport`` takes ``fast_path``: yes unless there is a ``problem``, which is
    logged as a warning (the fast path at INFO; the caller asks once and keeps the answer)."""
    if problem is None:
        logger.info("%r: publish_many uses %s", transport, fast_path)
        return True
    logger.warning(
        "%r: publish_many publishes each message through the client's public API instead of "
        "%s (slower, never wrong) because %s. Messages are delivered as before. Hint: install "
        "a release dockyard's extra allows (`pip install 'dockyard[%s]'` picks one) or upgrade "
        "dockyard.",
        transport,
        fast_path,
        problem,
        getattr(transport, "scheme", "?"),
    )
    return False
