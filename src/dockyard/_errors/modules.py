"""What ``App.build`` finds wrong in the modules, reported together in one error."""

from __future__ import annotations

from collections.abc import Sequence

from dockyard._errors.configuration import ConfigurationError
from dockyard._type_name import type_name

__all__ = [
    "ConflictingDynamicModuleError",
    "ConsumedRouteError",
    "DuplicateHandlerError",
    "DuplicateProviderError",
    "ImportCycleError",
    "InvalidBehaviorError",
    "InvalidExportError",
    "InvalidProviderError",
    "MissingMessageTypeError",
    "MissingProviderError",
    "ModuleConfigurationError",
    "ModuleProblem",
    "NotAModuleError",
    "NotExportedError",
    "OutOfBandWithoutConsumerError",
    "ScopeMismatchError",
    "UnknownExtensionError",
    "UnknownTransportError",
]


class ModuleProblem(ConfigurationError):  # noqa: N818 - reported inside ModuleConfigurationError
    """One problem found while building an app from its modules."""


class NotAModuleError(ModuleProblem, TypeError):
    """Something imported (or the root) is not a ``@module``."""

    def __init__(self, obj: object, referenced_by: str | None) -> None:
        self.obj = obj
        self.referenced_by = referenced_by
        super().__init__(obj, referenced_by)

    def __str__(self) -> str:
        where = f"Module `{self.referenced_by}` imports" if self.referenced_by else "App.build got"
        return (
            f"{where} `{type_name(self.obj)}`, which is not a module. "
            "Hint: decorate it with `@module(...)`, or pass a `DynamicModule`."
        )


class MissingProviderError(ModuleProblem, LookupError):
    """No module provides a type that a provider or handler needs."""

    def __init__(self, module: str, dependency: object, required_by: str) -> None:
        self.module = module
        self.dependency = dependency
        self.required_by = required_by
        super().__init__(module, dependency, required_by)

    def __str__(self) -> str:
        dep = type_name(self.dependency)
        return (
            f"Module `{self.module}` needs `{dep}` (for {self.required_by}), "
            "but no module provides it. "
            f"Hint: add a provider for `{dep}` to `{self.module}`, or import a module "
            "that provides and exports it."
        )


class NotExportedError(ModuleProblem, LookupError):
    """A needed type is provided by a module that does not export it, or is not imported."""

    def __init__(
        self,
        module: str,
        dependency: object,
        required_by: str,
        provider_module: str,
        *,
        imported: bool,
        exported: bool,
    ) -> None:
        self.module = module
        self.dependency = dependency
        self.required_by = required_by
        self.provider_module = provider_module
        self.imported = imported
        self.exported = exported
        super().__init__(module, dependency, required_by, provider_module, imported, exported)

    def __str__(self) -> str:
        dep = type_name(self.dependency)
        head = (
            f"Module `{self.module}` needs `{dep}` (for {self.required_by}), "
            f"provided by `{self.provider_module}`, "
        )
        if self.imported:
            return head + (
                "which does not export it. "
                f"Hint: add `{dep}` to `{self.provider_module}` exports, "
                "or import a module that does."
            )
        if self.exported:
            return head + (
                f"which `{self.module}` does not import. "
                f"Hint: add `{self.provider_module}` to `{self.module}` imports."
            )
        return head + (
            f"which `{self.module}` does not import and which does not export it. "
            f"Hint: add `{dep}` to `{self.provider_module}` exports and "
            f"`{self.provider_module}` to `{self.module}` imports."
        )


class ImportCycleError(ModuleProblem):
    """Modules import each other in a loop."""

    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__(self.cycle)

    def __str__(self) -> str:
        drawn = " → ".join(f"`{name}`" for name in self.cycle)
        return (
            f"Modules import each other in a cycle: {drawn}. "
            "Hint: move what they share into a module that both import, "
            "or let one side talk to the other through events."
        )


class DuplicateProviderError(ModuleProblem):
    """One module sees the same type from two places."""

    def __init__(self, module: str, dependency: object, sources: Sequence[str]) -> None:
        self.module = module
        self.dependency = dependency
        self.sources = tuple(sources)
        super().__init__(module, dependency, self.sources)

    def __str__(self) -> str:
        dep = type_name(self.dependency)
        names = " and ".join(f"`{s}`" for s in self.sources)
        return (
            f"Module `{self.module}` sees `{dep}` from {names}; a type must have one provider. "
            f"Hint: keep one provider of `{dep}` visible to `{self.module}`: remove the others, "
            "stop exporting them, or use `many(...)` for a collection."
        )


class InvalidExportError(ModuleProblem):
    """A module exports what it neither provides nor imports."""

    def __init__(self, module: str, export: object) -> None:
        self.module = module
        self.export = export
        super().__init__(module, export)

    def __str__(self) -> str:
        exp = type_name(self.export)
        return (
            f"Module `{self.module}` exports `{exp}`, which it neither provides nor imports. "
            f"Hint: add a provider for `{exp}` to `{self.module}`, import the module that "
            "exports it, or remove it from exports."
        )


class UnknownExtensionError(ModuleProblem, TypeError):
    """An extension implements no known hook."""

    def __init__(self, module: str, extension: object, known_hooks: Sequence[str]) -> None:
        self.module = module
        self.extension = extension
        self.known_hooks = tuple(known_hooks)
        super().__init__(module, extension, self.known_hooks)

    def __str__(self) -> str:
        hooks = ", ".join(f"`{h}`" for h in self.known_hooks)
        return (
            f"Extension `{type_name(type(self.extension))}` in module `{self.module}` "
            f"implements no known hook. Hint: subclass one of {hooks}."
        )


class ScopeMismatchError(ModuleProblem):
    """A longer-lived provider depends on a shorter-lived one."""

    def __init__(
        self,
        module: str,
        provided: object,
        lifetime: str,
        dependency: object,
        dependency_module: str,
        dependency_lifetime: str,
    ) -> None:
        self.module = module
        self.provided = provided
        self.lifetime = lifetime
        self.dependency = dependency
        self.dependency_module = dependency_module
        self.dependency_lifetime = dependency_lifetime
        super().__init__(
            module, provided, lifetime, dependency, dependency_module, dependency_lifetime
        )

    def __str__(self) -> str:
        prov, dep = type_name(self.provided), type_name(self.dependency)
        return (
            f"{self.lifetime.capitalize()} `{prov}` in module `{self.module}` depends on "
            f"{self.dependency_lifetime} `{dep}` from module `{self.dependency_module}`: "
            "a longer-lived object cannot hold a shorter-lived one. "
            f"Hint: make `{prov}` {self.dependency_lifetime}, or make `{dep}` {self.lifetime}."
        )


class ConflictingDynamicModuleError(ModuleProblem):
    """One module registered twice with different settings."""

    def __init__(self, module: str) -> None:
        self.module = module
        super().__init__(module)

    def __str__(self) -> str:
        return (
            f"Module `{self.module}` is registered twice with different settings. "
            f"Hint: call `{self.module}.register(...)` once, in the module that owns the "
            f"settings, and import plain `{self.module}` everywhere else."
        )


class InvalidProviderError(ModuleProblem, TypeError):
    """A provider helper got something unusable."""

    def __init__(self, module: str | None, provider: object, reason: str) -> None:
        self.module = module
        self.provider = provider
        self.reason = reason
        super().__init__(module, provider, reason)

    def __str__(self) -> str:
        where = f" in module `{self.module}`" if self.module else ""
        return f"Provider `{type_name(self.provider)}`{where} is not usable: {self.reason}"


class MissingMessageTypeError(ModuleProblem, TypeError):
    """A registered handler does not say which message type it handles."""

    def __init__(self, module: str, handler: object, base: str | None) -> None:
        self.module = module
        self.handler = handler
        self.base = base
        super().__init__(module, handler, base)

    def __str__(self) -> str:
        handler = type_name(self.handler)
        if self.base is None:
            return (
                f"`{handler}` in module `{self.module}` handlers is not a message handler. "
                "Hint: subclass `RequestHandler[Message, Result]`, `EventHandler[Event]`, "
                "`StreamHandler[Message, Item]` or `ChainHandler[Message, Result]`."
            )
        return (
            f"Handler `{handler}` in module `{self.module}` subclasses `{self.base}` without "
            "naming a message type. "
            f"Hint: name it in the base, e.g. `class {handler}({self.base}[PlaceOrder, ...])`."
        )


class GenericMessageTypeError(ModuleProblem, TypeError):
    """A handler names a parametrized generic message the dispatch cannot tell apart.

    ``EventHandler[Notice[UserLeft]]`` receives only the ``Notice`` events whose field typed
    with the parameter holds a ``UserLeft``; that needs such a field, and a class to check.
    """

    def __init__(self, module: str, handler: object, message: object, reason: str) -> None:
        self.module = module
        self.handler = handler
        self.message = message
        self.reason = reason
        super().__init__(module, handler, message, reason)

    def __str__(self) -> str:
        handler = type_name(self.handler)
        message = _generic_name(self.message)
        return (
            f"Handler `{handler}` in module `{self.module}` handles `{message}`, but "
            f"{self.reason}, so a `{message}` cannot be told apart from another "
            f"parametrization at run time. Hint: type a field of the message with each type "
            f"parameter (e.g. `payload: P`) and parametrize with classes, or handle the "
            f"unparametrized class and check the payload in the handler."
        )


def _generic_name(tp: object) -> str:
    origin = getattr(tp, "__origin__", None)
    args = getattr(tp, "__args__", None)
    if origin is None or not args:
        return type_name(tp)
    return f"{type_name(origin)}[{', '.join(_generic_name(a) for a in args)}]"


class MissingOutboxBackendError(ModuleProblem, LookupError):
    """``OutboxModule`` was given no backend, a broker transport, and the app has no database."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        super().__init__(transport)

    def __str__(self) -> str:
        return (
            "Module `OutboxModule` has no backend for its outbox: the app has no `SqlModule` "
            f"and the transport is `{self.transport}`, so messages would wait in process memory "
            "and a crash would lose them. Hint: add `SqlModule.register(url)` to the app (its "
            "outbox backend is then the default), or pass "
            "`backend=InMemoryOutboxBackend()` to accept that."
        )


class OutOfBandWithoutConsumerError(ModuleProblem, LookupError):
    """A handler runs out of band through a destination no endpoint of the app listens to."""

    def __init__(self, module: str, handler: type, destination: str) -> None:
        self.module = module
        self.handler = handler
        self.destination = destination
        super().__init__(module, handler, destination)

    def __str__(self) -> str:
        return (
            f"Module `{self.module}` runs `{type_name(self.handler)}` out of band through "
            f"`{self.destination}`, and no endpoint of this app listens to `{self.destination}`: "
            "its messages would wait in the broker, never handled. Hint: add "
            f'`listen("{self.destination}", group=...)` to '
            "`ConsumerModule.register(endpoints=[...])` in this app."
        )


class ConsumedRouteError(ModuleProblem, ValueError):
    """An app routes a message type to a destination it consumes itself."""

    def __init__(self, module: str, message_type: type, destination: str, endpoint: str) -> None:
        self.module = module
        self.message_type = message_type
        self.destination = destination
        self.endpoint = endpoint
        super().__init__(module, message_type, destination, endpoint)

    def __str__(self) -> str:
        name = type_name(self.message_type)
        return (
            f"Module `{self.module}` routes `{name}` to `{self.destination}`, which this app "
            f"also consumes (`{self.endpoint}`): each `{name}` would run its handlers here "
            "twice and be routed again under its own id (a dead letter). Hint: to run a "
            "handler in the background, list `out_of_band(Handler, "
            f'destination="{self.destination}")` in place of the route; to reach other apps, '
            "route it to a destination this app does not consume."
        )


class UnknownTransportError(ModuleProblem, LookupError):
    """A route or an endpoint names a destination of a transport the app does not have."""

    def __init__(self, where: str, destination: str, transports: Sequence[str]) -> None:
        self.where = where
        self.destination = destination
        self.transports = tuple(transports)
        super().__init__(where, destination, self.transports)

    def __str__(self) -> str:
        scheme = self.destination.partition("://")[0]
        names = ", ".join(f"`{name}://`" for name in self.transports)
        return (
            f"{self.where} sends to `{self.destination}`, but the app has no transport named "
            f"`{scheme}`; its transports are {names} (an unprefixed destination goes to the "
            f"first). Hint: add one to the outbox, `OutboxModule.register(transport=..., "
            f'transports={{"{scheme}": ...}})`, or write the destination with one of those '
            "prefixes."
        )


class UnknownRelayTransportError(UnknownTransportError):
    """``OutboxModule.register(relays=...)`` has settings for a transport the app does not
    have (a typo, or a transport left out of ``transports=...``)."""

    def __init__(self, name: str, transports: Sequence[str]) -> None:
        self.where = "`OutboxModule.register(relays=...)`"
        self.destination = f"{name}://"
        self.name = name
        self.transports = tuple(transports)
        ModuleProblem.__init__(self, name, self.transports)

    def __str__(self) -> str:
        names = ", ".join(f"`{name}`" for name in self.transports)
        return (
            f"{self.where} has relay settings for `{self.name}`, but the app has no transport "
            f"named `{self.name}`; its transports are {names} (the first one's relay uses "
            "`relay=...` unless named here). Hint: key `relays` by one of those names, or add "
            f'the transport: `OutboxModule.register(transports={{"{self.name}": ...}}, '
            "relays=...)`."
        )


class DuplicateHandlerError(ModuleProblem):
    """Two handlers answer one request type; a request has exactly one."""

    def __init__(self, message_type: type, handlers: Sequence[tuple[str, str]]) -> None:
        self.message_type = message_type
        self.handlers = tuple(handlers)
        """(handler, module) pairs, in registration order."""
        super().__init__(message_type, self.handlers)

    def __str__(self) -> str:
        name = type_name(self.message_type)
        found = " and ".join(f"`{h}` (module `{m}`)" for h, m in self.handlers)
        return (
            f"Request `{name}` has {len(self.handlers)} handlers: {found}; a request has "
            "exactly one. Hint: remove all but one, use events for several reactions, or make "
            "them `ChainHandler`s to try them in order."
        )


class AmbiguousHandlerError(ModuleProblem, LookupError):
    """A request type has no handler of its own and inherits from two or more handled
    request types, none more specific than the others (multiple inheritance)."""

    def __init__(self, message_type: type, candidates: Sequence[tuple[type, str]]) -> None:
        self.message_type = message_type
        self.candidates = tuple(candidates)
        """(handled base, its handler(s)) pairs, in the request's MRO order."""
        super().__init__(message_type, self.candidates)

    def __str__(self) -> str:
        name = type_name(self.message_type)
        found = " and ".join(f"`{type_name(base)}` by {h}" for base, h in self.candidates)
        return (
            f"Request `{name}` has no handler of its own, and the handlers of its bases are "
            f"equally specific for it: {found}; neither base is a subclass of the other, so "
            f"dockyard will not pick one by inheritance order. Hint: register a handler for "
            f"`{name}` itself (it may delegate to one of them)."
        )


class InvalidBehaviorError(ModuleProblem, TypeError):
    """Something given as a pipeline behavior is not one."""

    def __init__(self, behavior: object, where: str) -> None:
        self.behavior = behavior
        self.where = where
        super().__init__(behavior, where)

    def __str__(self) -> str:
        return (
            f"`{self.behavior!r}` in {self.where} is not a pipeline behavior. "
            "Hint: give an instance or a subclass of `PipelineBehavior`."
        )


class ModuleConfigurationError(ConfigurationError):
    """Raised by ``App.build`` with every problem it found, not only the first."""

    def __init__(self, problems: Sequence[ModuleProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(self.problems)

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"The app's modules have {count} problem{'s' if count != 1 else ''}:"
        lines = [f"  {i}. {p}" for i, p in enumerate(self.problems, 1)]
        return "\n".join([head, *lines])
