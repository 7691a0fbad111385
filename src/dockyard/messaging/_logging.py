"""``LoggingBehavior``: logs each handler call, its duration and its failure."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dockyard._type_name import type_name
from dockyard.messaging._behavior import PipelineBehavior

__all__ = ["LoggingBehavior"]


class LoggingBehavior(PipelineBehavior[Any, Any]):
    """Logs "handling X", then "handled X in N ms" or the error, at ``level``.

    When the logger does not log ``level``, a call costs one ``isEnabledFor`` check: no
    formatting, no clock reads.

    Args:
        logger: Where to log; ``dockyard.messaging`` by default.
        level: The level of the start and success records; failures log at ``ERROR``.
    """

    __slots__ = ("_level", "_logger")

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.DEBUG) -> None:
        self._logger = logger if logger is not None else logging.getLogger("dockyard.messaging")
        self._level = level

    async def handle(self, message: Any, call_next: Callable[[], Awaitable[Any]], /) -> Any:
        logger = self._logger
        if not logger.isEnabledFor(self._level):
            return await call_next()
        name = type_name(type(message))
        logger.log(self._level, "handling %s", name)
        start = time.perf_counter()
        try:
            result = await call_next()
        except Exception:
            elapsed = (time.perf_counter() - start) * 1000
            logger.exception("%s failed after %.2f ms", name, elapsed)
            raise
        elapsed = (time.perf_counter() - start) * 1000
        logger.log(self._level, "handled %s in %.2f ms", name, elapsed)
        return result
