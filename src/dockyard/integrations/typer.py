"""Typer as a door into a dockyard app: commands of your own CLI that run in a scope.

::

    cli = typer.Typer()
    commands = DockyardCommands(cli, build_app)

    @commands.command()
    async def place_order(order_id: str, sender: FromDockyard[ISender]) -> None:
        print(await sender.send(PlaceOrder(order_id)))

Each run of a command starts the app, opens one scope (one unit of work: committed when the
command returns, rolled back when it raises), resolves the ``FromDockyard[T]`` parameters in
it, runs the command (``async def`` ones in a new event loop) and stops the app. Typer sees
only the other parameters: ``--help`` lists them, and does not build the app.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    TypeAlias,
    TypeVar,
    get_args,
    get_origin,
    get_type_hints,
)

from dockyard.exceptions import MissingExtraError
from dockyard.messaging._bus import resolve_in

try:
    import typer
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingExtraError("dockyard.integrations.typer", "Typer", "cli") from exc

if TYPE_CHECKING:  # an entry point never imports the app at run time (import direction)
    from dockyard.app import App

__all__ = ["DockyardCommands", "FromDockyard"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class _Injected:
    """The marker of ``FromDockyard``: filled from the command's scope, hidden from Typer."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FromDockyard"


_INJECTED = _Injected()

FromDockyard: TypeAlias = Annotated[T, _INJECTED]
"""A command parameter resolved in the command's dockyard scope, not read from the command line."""


class DockyardCommands:
    """Add commands that run in a dockyard scope to your own Typer app.

    Args:
        cli: Your Typer app.
        app: The dockyard app, or a function building it (called at the first command run,
            so ``--help`` and shell completion do not build it).
    """

    __slots__ = ("_app", "_factory", "cli")

    def __init__(self, cli: typer.Typer, app: App | Callable[[], App]) -> None:
        self.cli = cli
        # an App is not callable: a callable is a factory
        self._app: App | None = None if callable(app) else app
        self._factory: Callable[[], App] | None = app if callable(app) else None

    @property
    def app(self) -> App:
        """The dockyard app (built now, if a factory was given and not called yet)."""
        if self._app is None:
            assert self._factory is not None  # one of the two is set by __init__
            self._app = self._factory()
        return self._app

    def command(self, name: str | None = None, **options: Any) -> Callable[[F], F]:
        """Register the decorated function as a command of ``cli`` (``options`` go to
        ``Typer.command``); its ``FromDockyard[T]`` parameters are injected."""

        def register(fn: F) -> F:
            self.cli.command(name, **options)(self._runner(fn))
            return fn

        return register

    def _runner(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = get_type_hints(fn, include_extras=True)
        signature = inspect.signature(fn)
        injected: dict[str, Any] = {}
        visible: list[inspect.Parameter] = []
        for parameter in signature.parameters.values():
            hint = hints.get(parameter.name, parameter.annotation)
            if get_origin(hint) is Annotated and any(m is _INJECTED for m in hint.__metadata__):
                injected[parameter.name] = get_args(hint)[0]
            else:
                visible.append(parameter.replace(annotation=hint))

        @functools.wraps(fn)
        def run(**arguments: Any) -> Any:
            return asyncio.run(self._run(fn, injected, arguments))

        run.__signature__ = signature.replace(parameters=visible)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in visible}
        return run

    async def _run(
        self, fn: Callable[..., Any], injected: dict[str, Any], arguments: dict[str, Any]
    ) -> Any:
        async with self.app as app, app.scope() as scope:
            for name, dependency in injected.items():
                arguments[name] = await resolve_in(scope, dependency)
            result = fn(**arguments)
            if inspect.isawaitable(result):
                result = await result
            return result
