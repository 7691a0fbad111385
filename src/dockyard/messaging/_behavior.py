"""Pipeline behaviors: code that wraps handlers, like middleware."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

__all__ = ["PipelineBehavior"]

M = TypeVar("M")
R = TypeVar("R")


class PipelineBehavior(abc.ABC, Generic[M, R]):
    """Wraps each handler call for messages of type ``M``.

    ``M`` filters what a global behavior applies to: ``PipelineBehavior[Command[Any], Any]``
    wraps commands only; ``PipelineBehavior[Any, Any]`` wraps everything. Behaviors apply to
    ``send``, ``stream`` (``call_next`` returns the async iterator) and ``publish`` (once per
    event handler).

    Give an instance to share it app-wide, or the class to have it built in each scope with
    its constructor dependencies injected (resolved as the root module sees them).
    """

    __slots__ = ()

    @abc.abstractmethod
    async def handle(self, message: M, call_next: Callable[[], Awaitable[R]], /) -> R:
        """Do something around ``await call_next()`` and return its result."""
