"""A pipeline behavior that prints each command as the mediator dispatches it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dockyard.messaging import Command, PipelineBehavior
from examples.shop.ui.console import say


class NarrateCommands(PipelineBehavior[Command[Any], Any]):
    async def handle(
        self, message: Command[Any], call_next: Callable[[], Awaitable[Any]], /
    ) -> Any:
        say(f"-> {type(message).__name__}")
        return await call_next()
