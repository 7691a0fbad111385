"""Mistakes in how the app is declared or installed: fix the code, not the data or the servers."""

from __future__ import annotations

from collections.abc import Sequence

from dockyard._errors.base import DockyardError
from dockyard._type_name import type_name

__all__ = [
    "AppImportError",
    "ChainNotFoundError",
    "ConfigurationError",
    "ContainerBuildError",
    "DatabaseUrlError",
    "EventTypeConflictError",
    "InvalidProjectionError",
    "InvalidRouteError",
    "InvalidSagaError",
    "MissingApplierError",
    "MissingExtraError",
    "SagaNotRegisteredError",
    "UnknownServiceError",
    "UnsupportedReleaseError",
]


class ConfigurationError(DockyardError):
    """The app's code or installation declares something that cannot work.

    Most are found by ``App.build`` before anything runs (``ModuleConfigurationError`` lists
    them all); the rest when the faulty declaration is first used. Retrying never helps.
    """


class ContainerBuildError(ConfigurationError):
    """Dishka refused the wiring that dockyard's own checks let through."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)

    def __str__(self) -> str:
        return (
            "Dishka could not build the container after dockyard's checks passed. "
            f"Dishka says: {self.detail}"
        )


class InvalidProjectionError(ConfigurationError, TypeError):
    """A projection or subscription class cannot be registered as declared."""

    def __init__(self, projection: object, problem: str, hint: str) -> None:
        self.projection = projection
        self.problem = problem
        self.hint = hint
        super().__init__(projection, problem, hint)

    def __str__(self) -> str:
        return f"Projection `{type_name(self.projection)}` {self.problem}. Hint: {self.hint}."


class InvalidRouteError(ConfigurationError, TypeError):
    """``route(...).to(...)`` was given something that cannot be routed."""

    def __init__(self, target: object, problem: str) -> None:
        self.target = target
        self.problem = problem
        super().__init__(target, problem)

    def __str__(self) -> str:
        return (
            f"Cannot route `{type_name(self.target)}`: {self.problem}. Hint: write "
            '`route(OrderPlaced).to("orders")` with a message class and a non-empty '
            "destination, and list it in a module's `handlers=[...]` or in "
            "`OutboxModule.register(routes=[...])`."
        )


class InvalidSagaError(ConfigurationError, TypeError):
    """Saga definitions cannot run as declared; lists every problem of every saga at once."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        listed = "\n".join(f"  {n}. {p}" for n, p in enumerate(self.problems, 1))
        count = len(self.problems)
        return f"{count} problem{'s' if count != 1 else ''} in the saga definitions:\n{listed}"


class SagaNotRegisteredError(ConfigurationError, LookupError):
    """A saga definition was used with an app whose ``SagasModule`` does not register it."""

    def __init__(self, name: str, registered: Sequence[str]) -> None:
        self.name = name
        self.registered = tuple(registered)
        super().__init__(name, self.registered)

    def __str__(self) -> str:
        known = ", ".join(f"`{n}`" for n in self.registered) or "none"
        return (
            f"Saga `{self.name}` is not registered in this app (registered: {known}). "
            "Hint: list it in `SagasModule.register(sagas=[...])`; a definition that differs "
            "from the registered one of the same name counts as another saga."
        )


class ChainNotFoundError(ConfigurationError, LookupError):
    """A chain of responsibility was asked for by a request type the app has no chain for."""

    def __init__(self, name: str, chains: Sequence[str]) -> None:
        self.name = name
        self.chains = tuple(chains)
        super().__init__(name, self.chains)

    def __str__(self) -> str:
        known = ", ".join(f"`{c}`" for c in self.chains) or "none"
        return (
            f"No chain of responsibility answers `{self.name}` in this app (chains: {known}). "
            "Hint: name the request type the chain answers; its links are the "
            "`ChainHandler[Request, Result]` classes in the modules' `handlers=[...]`."
        )


class EventTypeConflictError(ConfigurationError, ValueError):
    """Two classes claim one stable event type name."""

    def __init__(self, name: str, existing: type, new: type) -> None:
        self.name = name
        self.existing = existing
        self.new = new
        super().__init__(name, existing, new)

    def __str__(self) -> str:
        def path(cls: type) -> str:
            return f"{cls.__module__}.{cls.__qualname__}"

        return (
            f"Event type name `{self.name}` is declared by both `{path(self.existing)}` and "
            f"`{path(self.new)}`; stored events would be ambiguous. Hint: give one of them "
            'a distinct stable name with `@event_type("...")`.'
        )


class MissingApplierError(ConfigurationError, LookupError):
    """An aggregate has no ``@applies`` method for an event type it meets."""

    def __init__(self, aggregate: type, event_type: type) -> None:
        self.aggregate = aggregate
        self.event_type = event_type
        super().__init__(aggregate, event_type)

    def __str__(self) -> str:
        aggregate, event = type_name(self.aggregate), type_name(self.event_type)
        return (
            f"`{aggregate}` has no method to apply `{event}`. Hint: add to `{aggregate}` a "
            f"method marked `@applies` that takes an `{event}` (it may do nothing)."
        )


class MissingExtraError(ConfigurationError, ImportError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        self.feature = feature
        self.package = package
        self.extra = extra
        super().__init__(feature, package, extra)

    def __str__(self) -> str:
        return (
            f"{self.feature} needs {self.package}, which is not installed. "
            f"Hint: pip install 'dockyard[{self.extra}]'"
        )


class DatabaseUrlError(ConfigurationError, ValueError):
    """A database URL names a driver, or a database, dockyard does not run on.

    ``expected`` is the ``backend+driver`` to write instead; empty when the database itself
    is not one dockyard runs on (``mysql://``).
    """

    def __init__(self, given: str, expected: str = "") -> None:
        self.given = given
        self.expected = expected
        super().__init__(given, expected)

    def __str__(self) -> str:
        if not self.expected:
            return (
                "dockyard runs on PostgreSQL (`postgresql+asyncpg://...`) and SQLite "
                f"(`sqlite+aiosqlite://...`), not on `{self.given}://` databases. Hint: point "
                "the URL at a PostgreSQL or SQLite database."
            )
        return (
            f"dockyard runs `{self.expected.split('+')[0]}` databases on `{self.expected}`, not "
            f"`{self.given}`. Hint: write the URL as `{self.expected}://...` (or without a "
            "driver, which means the same)."
        )


class ConsumerGroupConflictError(ConfigurationError, ValueError):
    """A consumer group exists on the broker with other settings than a transport declares."""

    def __init__(
        self, scheme: str, destination: str, group: str, existing: str, declared: str, fix: str
    ) -> None:
        self.scheme = scheme
        self.destination = destination
        self.group = group
        self.existing = existing
        self.declared = declared
        self.fix = fix
        super().__init__(scheme, destination, group, existing, declared, fix)

    def __str__(self) -> str:
        return (
            f"The {self.scheme} consumer group `{self.group}` of `{self.destination}` exists "
            f"with {self.existing}; this transport declares {self.declared}. The broker keeps "
            "the settings of the group's first declaration. Hint: give every app of the group "
            f"the same settings, or {self.fix} to create it again with the new ones."
        )


class UnsupportedReleaseError(ConfigurationError, ImportError):
    """An integration found a release of the library it plugs into that it does not support."""

    def __init__(
        self, feature: str, package: str, installed: str, supported: str, extra: str
    ) -> None:
        self.feature = feature
        self.package = package
        self.installed = installed
        self.supported = supported
        self.extra = extra
        super().__init__(feature, package, installed, supported, extra)

    def __str__(self) -> str:
        return (
            f"{self.feature} supports {self.package} {self.supported}, not {self.installed}. "
            f"Hint: pip install 'dockyard[{self.extra}]' installs a supported release "
            f"(or pin {self.package} to one)"
        )


class IntegrationNotSetUpError(ConfigurationError, RuntimeError):
    """A web integration's injection ran in a web app that was never given a dockyard app."""

    def __init__(self, framework: str, needed: str, setup: str, integration: str) -> None:
        self.framework = framework
        self.needed = needed
        self.setup = setup
        self.integration = integration
        super().__init__(framework, needed, setup, integration)

    def __str__(self) -> str:
        return (
            f"This {self.framework} app has no dockyard app, so {self.needed} cannot be "
            f"resolved. Hint: call `{self.setup}` where the {self.framework} app is made "
            f"({self.integration})"
        )


class AppImportError(ConfigurationError, ImportError):
    """``dockyard worker module:attribute`` could not load an ``App`` from its argument."""

    def __init__(self, target: str, problem: str) -> None:
        self.target = target
        self.problem = problem
        super().__init__(target, problem)

    def __str__(self) -> str:
        return (
            f"Cannot load the app `{self.target}`: {self.problem}. Hint: pass "
            "`package.module:attribute` naming an `App` (or a function returning one), "
            "importable from the current directory, e.g. `dockyard worker shop.app:app`."
        )


class UnknownServiceError(ConfigurationError, LookupError):
    """``dockyard worker --only/--skip`` (``run_worker(only=, skip=)``) named services the app
    does not have, or left the worker nothing to run."""

    def __init__(self, unmatched: Sequence[str], services: Sequence[str]) -> None:
        self.unmatched = tuple(unmatched)
        self.services = tuple(services)
        super().__init__(self.unmatched, self.services)

    def __str__(self) -> str:
        known = ", ".join(f"`{s}`" for s in self.services) or "none"
        if self.unmatched:
            patterns = ", ".join(f"`{p}`" for p in self.unmatched)
            problem = f"No background service matches {patterns}"
        else:
            problem = "`--only`/`--skip` leave no background service to run"
        return (
            f"{problem} (the app's services: {known}). Hint: give glob patterns over those "
            "names, e.g. `--only 'outbox-relay*'` or `--skip 'consumer:*'`; "
            "`dockyard describe APP` lists them."
        )
