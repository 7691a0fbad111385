"""``dockyard check``, ``describe`` and ``graph``: an app, built and read, never started.

Nothing here connects to a database or a broker: the app is imported and built (which runs
every check ``App.build`` has), then read. The data and the drawings come from
``dockyard.diagrams``, imported when a command runs so that ``dockyard --help`` stays quick.
"""

from __future__ import annotations

import enum
import typing
from dataclasses import dataclass
from typing import Annotated

import typer

from dockyard.cli._commands import cli
from dockyard.cli._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    AppArgument,
    DebugOption,
    JsonOption,
    emit_json,
    fail,
    load_or_exit,
)
from dockyard.cli._load import load_app
from dockyard.exceptions import (
    AppImportError,
    ConfigurationError,
    DockyardError,
    InvalidSagaError,
    ModuleConfigurationError,
)

if typing.TYPE_CHECKING:
    from dockyard.app import App
    from dockyard.diagrams import AppDescription, MessageDescription, SagaStepDescription

__all__ = ["check", "describe", "graph"]

_WIDTH = 100  # wrap comma-separated lists of names at this many characters


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing ``dockyard check`` found: the error's class, its module if it names one."""

    error: str
    module: str | None
    message: str


def _problems_of(error: BaseException) -> list[Problem]:
    if isinstance(error, ModuleConfigurationError):
        return [p for problem in error.problems for p in _problems_of(problem)]
    if isinstance(error, InvalidSagaError):
        return [Problem(type(error).__name__, None, text) for text in error.problems]
    module = getattr(error, "module", None)
    return [Problem(type(error).__name__, module if isinstance(module, str) else None, str(error))]


def _load_for_check(target: str, *, debug: bool) -> tuple[App | None, list[Problem]]:
    """The app, or the problems that kept it from building; exit 2 if it does not import."""
    try:
        return load_app(target), []
    except AppImportError as error:
        cause = error.__cause__
        # The app's code ran and declared something that cannot work: what check is for.
        if isinstance(cause, ConfigurationError) and not isinstance(cause, AppImportError):
            return None, _problems_of(cause)
        fail(error, code=EXIT_USAGE, debug=debug)


def _checks_after_build(app: App) -> list[Problem]:
    """What otherwise fails only once the app runs, checked in the built app."""
    from dockyard.consumer._module import type_name_conflicts

    problems = [p for conflict in type_name_conflicts(app) for p in _problems_of(conflict)]
    try:
        app.background_services()
    except DockyardError as error:
        problems += _problems_of(error)
    return problems


@cli.command()
def check(app: AppArgument, json_output: JsonOption = False, debug: DebugOption = False) -> None:
    """Build the app and run every check it has, without starting anything (for CI).

    Exits 0 and prints a summary when the app is sound; exits 1 and lists every problem
    (each naming its module or type and the fix) when not; exits 2 when the app does not
    import.
    """
    loaded, problems = _load_for_check(app, debug=debug)
    if loaded is not None:
        problems = _checks_after_build(loaded)
    counts: dict[str, int] = {}
    if loaded is not None and not problems:
        messages = loaded.messages
        counts = {
            "modules": len(loaded.modules),
            "message_types": len(messages),
            "handlers": sum(len(info.handlers) for info in messages),
            "background_services": len(loaded.background_services()),
        }
    if json_output:
        found = [{"error": p.error, "module": p.module, "message": p.message} for p in problems]
        emit_json({"ok": not problems, "app": app, "problems": found, **counts})
    elif problems:
        count = len(problems)
        typer.echo(f"{app}: {count} problem{'s' if count != 1 else ''}")
        for number, problem in enumerate(problems, 1):
            typer.echo(f"  {number}. {problem.message}")
    else:
        typer.echo("ok: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items()))
    if problems:
        raise typer.Exit(EXIT_FAILED)


@cli.command()
def describe(app: AppArgument, json_output: JsonOption = False, debug: DebugOption = False) -> None:
    """Show what the app is made of, read from the built app (nothing starts).

    Modules (imports, exports, providers, handlers), message types with their handlers and
    behaviors, outbox routes, consumer endpoints, background services and sagas.
    """
    from dockyard.diagrams import describe as describe_app

    description = describe_app(load_or_exit(app, debug=debug))
    if json_output:
        emit_json(description.as_dict())
    else:
        typer.echo("\n".join(_text(description)))


class View(enum.StrEnum):
    modules = "modules"
    messages = "messages"
    saga = "saga"
    chain = "chain"


class Format(enum.StrEnum):
    mermaid = "mermaid"
    dot = "dot"


@cli.command()
def graph(
    app: AppArgument,
    view: Annotated[View, typer.Argument(help="What to draw.")] = View.modules,
    name: Annotated[
        str | None,
        typer.Argument(help="For `saga`, its name; for `chain`, the request type it answers."),
    ] = None,
    output_format: Annotated[
        Format, typer.Option("--format", help="Mermaid (renders in Markdown) or Graphviz DOT.")
    ] = Format.mermaid,
    debug: DebugOption = False,
) -> None:
    """Draw the app: its modules, its message flow, a saga or a chain of responsibility."""
    from dockyard import diagrams

    loaded = load_or_exit(app, debug=debug)
    if view in {View.saga, View.chain} and name is None:
        known = _names(loaded, view)
        listed = ", ".join(f"`{n}`" for n in known) or "none in this app"
        fail(f"`graph {view}` needs a NAME: one of {listed}", code=EXIT_USAGE)
    if view in {View.modules, View.messages} and name is not None:
        fail(f"`graph {view}` takes no NAME (got `{name}`)", code=EXIT_USAGE)
    draw = diagrams.dot if output_format is Format.dot else diagrams.mermaid
    try:
        typer.echo(draw(loaded, view.value, name))
    except LookupError as error:  # an unknown saga or chain; the message lists the known ones
        fail(error if debug else str(error), code=EXIT_USAGE, debug=debug)


def _names(app: App, view: View) -> list[str]:
    from dockyard import diagrams

    description = diagrams.describe(app)
    if view is View.saga:
        return [saga.name for saga in description.sagas]
    return [message.name for message in diagrams.chains(description)]


# -- the text of `dockyard describe` ---------------------------------------------------------


def _listing(prefix: str, items: typing.Iterable[str]) -> list[str]:
    """``prefix`` then ``a, b, c``, wrapped at ``_WIDTH`` with continuation lines aligned."""
    lines: list[str] = []
    current = ""
    listed = list(items)
    for position, item in enumerate(listed):
        piece = item + ("," if position < len(listed) - 1 else "")
        if current and len(prefix) + len(current) + 1 + len(piece) > _WIDTH:
            lines.append(current)
            current = ""
        current += f" {piece}" if current else piece
    if current:
        lines.append(current)
    return [(prefix if n == 0 else " " * len(prefix)) + line for n, line in enumerate(lines)]


def _field(label: str, items: typing.Iterable[str]) -> list[str]:
    return _listing(f"    {label:<9} ", items)


def _text(description: AppDescription) -> list[str]:
    services = len(description.background_services)
    sagas = len(description.sagas)
    summary = (
        f"App {description.root}: {len(description.modules)} modules, "
        f"{len(description.messages)} message types, {description.handler_count} handlers, "
        f"{services} background service{'s' if services != 1 else ''}, "
        f"{sagas} saga{'s' if sagas != 1 else ''}"
    )
    lines = [
        summary,
        "",
        "Modules (in init order: imports first)",
    ]
    for module in description.modules:
        lines.append(f"  {module.name}" + (" (global)" if module.is_global else ""))
        lines += _field("imports", module.imports)
        lines += _field("exports", module.exports)
        lines += _field(
            "provides",
            (
                f"{p.provides} ({p.lifetime}{'' if p.kind == 'factory' else ' ' + p.kind})"
                for p in module.providers
            ),
        )
        lines += _field("handlers", module.handlers)
    lines += ["", "Messages (type, then each handler and the behaviors around it)"]
    if not description.messages:
        lines.append("  none")
    names = [m.name for m in description.messages]
    shown = [m.path if names.count(m.name) > 1 else m.name for m in description.messages]
    width = max(map(len, shown), default=0)
    for message, name in zip(description.messages, shown, strict=True):
        first = f"  {message.kind:<7} {name:<{width}}  "
        for number, line in enumerate(_handler_lines(message)):
            lines.append((first if number == 0 else " " * len(first)) + line)
    lines += ["", "Routes (outbox)"]
    lines += [
        f"  {message.name} → {route.destination}" + (" (keyed)" if route.partition_key else "")
        for message, route in description.routes
    ] or ["  none"]
    lines += ["", "Endpoints (consumers)"]
    lines += [
        f"  {e.service}: destination {e.destination}, group {e.group}, concurrency {e.concurrency}"
        for e in description.endpoints
    ] or ["  none"]
    lines += ["", "Background services (dockyard worker)"]
    lines += _listing("  ", description.background_services) or ["  none"]
    lines += ["", "Sagas"]
    for saga in description.sagas:
        compatible = ", ".join(str(v) for v in saga.compatible_with)
        lines.append(
            f"  {saga.name} v{saga.version} (state {saga.state})"
            + (f", resumes v{compatible}" if compatible else "")
        )
        lines += [f"    {n}. {_step(step)}" for n, step in enumerate(saga.steps, 1)]
    if not description.sagas:
        lines.append("  none")
    return lines


def _handler_lines(message: MessageDescription) -> list[str]:
    if not message.handlers:
        return ["(no handler)"]
    lines = []
    for handler in message.handlers:
        if handler.route is not None:
            line = f"→ outbox to {handler.route.destination}"
        else:
            line = f"{handler.handler} ({handler.module})"
        if handler.behaviors:
            line += " behaviors: " + ", ".join(handler.behaviors)
        lines.append(line)
    return lines


def _step(step: SagaStepDescription) -> str:
    marks = [mark for mark, on in (("pivot", step.pivot), ("undo", step.compensable)) if on]
    text = f"{step.name}: {step.handler}" + (f" ({', '.join(marks)})" if marks else "")
    if step.fallback is not None:
        text += f"; fallback {_step(step.fallback)}"
    return text
