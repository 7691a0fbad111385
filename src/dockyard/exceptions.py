"""Every error dockyard raises.

    DockyardError
    ├── ModuleConfigurationError          one build found problems; lists every one of them
    │   (each problem below is also a ModuleProblem, so tests can match on its type)
    ├── ModuleProblem
    │   ├── NotAModuleError               (+ TypeError) something imported is not a @module
    │   ├── MissingProviderError          (+ LookupError) nobody provides a needed type
    │   ├── NotExportedError              (+ LookupError) provided elsewhere, not exported/imported
    │   ├── ImportCycleError              modules import each other in a loop
    │   ├── DuplicateProviderError        one module sees the same type from two places
    │   ├── InvalidExportError            a module exports what it neither provides nor imports
    │   ├── UnknownExtensionError         (+ TypeError) an extension implements no known hook
    │   ├── ScopeMismatchError            a longer-lived provider depends on a shorter-lived one
    │   ├── ConflictingDynamicModuleError one module registered twice with different settings
    │   └── InvalidProviderError          (+ TypeError) a provider helper got something unusable
    ├── ContainerBuildError               Dishka refused the wiring our checks let through
    └── AppNotStartedError                (+ RuntimeError) the app was used outside `async with app`

Each error stores its fields and renders its message in ``__str__``: what went wrong, where,
and how to fix it. ``docs/errors.md`` lists every message; tests pin them.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AppNotStartedError",
    "ConflictingDynamicModuleError",
    "ContainerBuildError",
    "DockyardError",
    "DuplicateProviderError",
    "ImportCycleError",
    "InvalidExportError",
    "InvalidProviderError",
    "MissingProviderError",
    "ModuleConfigurationError",
    "ModuleProblem",
    "NotAModuleError",
    "NotExportedError",
    "ScopeMismatchError",
    "UnknownExtensionError",
]


def type_name(tp: object) -> str:
    """A short, readable name for a type or type hint (``Repository[Order]``, ``Sequence[int]``)."""
    if isinstance(tp, type) and not getattr(tp, "__args__", None):
        return tp.__qualname__
    text = repr(tp)
    for prefix in ("typing.", "collections.abc."):
        text = text.replace(prefix, "")
    origin = getattr(tp, "__origin__", None)
    args = getattr(tp, "__args__", None)
    if origin is not None and args:
        return f"{type_name(origin)}[{', '.join(type_name(a) for a in args)}]"
    return text


class DockyardError(Exception):
    """The root of every error dockyard raises."""


# ----------------------------------------------------------------------------- module system


class ModuleProblem(DockyardError):  # noqa: N818 - reported inside ModuleConfigurationError
    """One problem found while building an app from its modules."""


class NotAModuleError(ModuleProblem, TypeError):
    def __init__(self, obj: object, referenced_by: str | None) -> None:
        self.obj = obj
        self.referenced_by = referenced_by
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"Module `{self.referenced_by}` imports" if self.referenced_by else "App.build got"
        return (
            f"{where} `{type_name(self.obj)}`, which is not a module. "
            "Hint: decorate it with `@module(...)`, or pass a `DynamicModule`."
        )


class MissingProviderError(ModuleProblem, LookupError):
    def __init__(self, module: str, dependency: object, required_by: str) -> None:
        self.module = module
        self.dependency = dependency
        self.required_by = required_by
        super().__init__(str(self))

    def __str__(self) -> str:
        dep = type_name(self.dependency)
        return (
            f"Module `{self.module}` needs `{dep}` (for {self.required_by}), "
            "but no module provides it. "
            f"Hint: add a provider for `{dep}` to `{self.module}`, or import a module "
            "that provides and exports it."
        )


class NotExportedError(ModuleProblem, LookupError):
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
        super().__init__(str(self))

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
    def __init__(self, cycle: Sequence[str]) -> None:
        self.cycle = tuple(cycle)
        super().__init__(str(self))

    def __str__(self) -> str:
        drawn = " → ".join(f"`{name}`" for name in self.cycle)
        return (
            f"Modules import each other in a cycle: {drawn}. "
            "Hint: move what they share into a module that both import, "
            "or let one side talk to the other through events."
        )


class DuplicateProviderError(ModuleProblem):
    def __init__(self, module: str, dependency: object, sources: Sequence[str]) -> None:
        self.module = module
        self.dependency = dependency
        self.sources = tuple(sources)
        super().__init__(str(self))

    def __str__(self) -> str:
        dep = type_name(self.dependency)
        names = " and ".join(f"`{s}`" for s in self.sources)
        return (
            f"Module `{self.module}` sees `{dep}` from {names}; a type must have one provider. "
            f"Hint: keep one provider of `{dep}` visible to `{self.module}`: remove the others, "
            "stop exporting them, or use `many(...)` for a collection."
        )


class InvalidExportError(ModuleProblem):
    def __init__(self, module: str, export: object) -> None:
        self.module = module
        self.export = export
        super().__init__(str(self))

    def __str__(self) -> str:
        exp = type_name(self.export)
        return (
            f"Module `{self.module}` exports `{exp}`, which it neither provides nor imports. "
            f"Hint: add a provider for `{exp}` to `{self.module}`, import the module that "
            "exports it, or remove it from exports."
        )


class UnknownExtensionError(ModuleProblem, TypeError):
    def __init__(self, module: str, extension: object, known_hooks: Sequence[str]) -> None:
        self.module = module
        self.extension = extension
        self.known_hooks = tuple(known_hooks)
        super().__init__(str(self))

    def __str__(self) -> str:
        hooks = ", ".join(f"`{h}`" for h in self.known_hooks)
        return (
            f"Extension `{type_name(type(self.extension))}` in module `{self.module}` "
            f"implements no known hook. Hint: subclass one of {hooks}."
        )


class ScopeMismatchError(ModuleProblem):
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
        super().__init__(str(self))

    def __str__(self) -> str:
        prov, dep = type_name(self.provided), type_name(self.dependency)
        return (
            f"{self.lifetime.capitalize()} `{prov}` in module `{self.module}` depends on "
            f"{self.dependency_lifetime} `{dep}` from module `{self.dependency_module}`: "
            "a longer-lived object cannot hold a shorter-lived one. "
            f"Hint: make `{prov}` {self.dependency_lifetime}, or make `{dep}` {self.lifetime}."
        )


class ConflictingDynamicModuleError(ModuleProblem):
    def __init__(self, module: str) -> None:
        self.module = module
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Module `{self.module}` is registered twice with different settings. "
            f"Hint: call `{self.module}.register(...)` once, in the module that owns the "
            f"settings, and import plain `{self.module}` everywhere else."
        )


class InvalidProviderError(ModuleProblem, TypeError):
    def __init__(self, module: str | None, provider: object, reason: str) -> None:
        self.module = module
        self.provider = provider
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" in module `{self.module}`" if self.module else ""
        return f"Provider `{self.provider!r}`{where} is not usable: {self.reason}"


class ModuleConfigurationError(DockyardError):
    """Raised by ``App.build`` with every problem it found, not only the first."""

    def __init__(self, problems: Sequence[ModuleProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"The app's modules have {count} problem{'s' if count != 1 else ''}:"
        lines = [f"  {i}. {p}" for i, p in enumerate(self.problems, 1)]
        return "\n".join([head, *lines])


class ContainerBuildError(DockyardError):
    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            "Dishka could not build the container after dockyard's checks passed. "
            f"Dishka says: {self.detail}"
        )


class AppNotStartedError(DockyardError, RuntimeError):
    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(str(self))

    def __str__(self) -> str:
        return (
            f"Cannot {self.action} before the app has started. "
            "Hint: use `async with app:` (or `await app.start()`) first."
        )
