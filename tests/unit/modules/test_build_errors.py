"""Every build-time problem of the module system, with its message pinned."""

from __future__ import annotations

import pytest

from dockyard import App, DynamicModule, module, object_, scoped, singleton
from dockyard.exceptions import (
    ConflictingDynamicModuleError,
    DuplicateProviderError,
    ImportCycleError,
    InvalidExportError,
    InvalidProviderError,
    MissingProviderError,
    ModuleConfigurationError,
    ModuleProblem,
    NotAModuleError,
    NotExportedError,
    ScopeMismatchError,
    UnknownExtensionError,
)


class InvoiceRepository:
    pass


class InvoiceService:
    def __init__(self, repository: InvoiceRepository) -> None:
        self.repository = repository


class Session:
    pass


class Cache:
    def __init__(self, session: Session) -> None:
        self.session = session


def build_problems(root: type | DynamicModule) -> tuple[ModuleProblem, ...]:
    with pytest.raises(ModuleConfigurationError) as info:
        App.build(root)
    return info.value.problems


def only(root: type | DynamicModule) -> ModuleProblem:
    problems = build_problems(root)
    assert len(problems) == 1, problems
    return problems[0]


def test_missing_provider() -> None:
    @module(providers=[scoped(InvoiceService)])
    class Billing: ...

    problem = only(Billing)
    assert isinstance(problem, MissingProviderError)
    assert isinstance(problem, LookupError)
    assert str(problem) == (
        "Module `Billing` needs `InvoiceRepository` "
        "(for `InvoiceService`), but no module provides it. Hint: add a provider for "
        "`InvoiceRepository` to `Billing`, or import a module "
        "that provides and exports it."
    )


@module(providers=[scoped(InvoiceRepository)])
class Sales: ...


@module(providers=[scoped(InvoiceRepository)], exports=[InvoiceRepository])
class ExportingSales: ...


def test_dependency_not_exported_by_imported_module() -> None:
    @module(providers=[scoped(InvoiceService)], imports=[Sales])
    class Billing: ...

    problem = only(Billing)
    assert isinstance(problem, NotExportedError)
    assert str(problem) == (
        "Module `Billing` needs "
        "`InvoiceRepository` (for `InvoiceService`), provided by `Sales`, which does not export "
        "it. Hint: add `InvoiceRepository` to `Sales` exports, or import a module that does."
    )


def test_dependency_exported_but_not_imported() -> None:
    @module(providers=[scoped(InvoiceService)])
    class Billing: ...

    @module(imports=[Billing, ExportingSales])
    class Root: ...

    problem = only(Root)
    assert isinstance(problem, NotExportedError)
    assert str(problem) == (
        "Module `Billing` needs "
        "`InvoiceRepository` (for `InvoiceService`), provided by `ExportingSales`, which "
        "`Billing` does not import. "
        "Hint: add `ExportingSales` to `"
        "Billing` imports."
    )


def test_dependency_neither_exported_nor_imported() -> None:
    @module(providers=[scoped(InvoiceService)])
    class Billing: ...

    @module(imports=[Billing, Sales])
    class Root: ...

    problem = only(Root)
    assert isinstance(problem, NotExportedError)
    assert "which `Billing` does not import and which does not export it" in str(problem)
    assert "Hint: add `InvoiceRepository` to `Sales` exports and `Sales` to " in str(problem)


@module(imports=[])
class CycleA: ...


@module(imports=[CycleA])
class CycleB: ...


@module(imports=[CycleB])
class CycleC: ...


def test_import_cycle_is_drawn_not_a_recursion_error() -> None:
    # Close the loop after the fact: decorators cannot refer forward.
    CycleA.__dockyard_module__ = type(CycleA.__dockyard_module__)(  # type: ignore[attr-defined]
        target=CycleA, imports=(CycleC,)
    )
    try:
        problem = only(CycleA)
    finally:
        CycleA.__dockyard_module__ = type(CycleA.__dockyard_module__)(target=CycleA)  # type: ignore[attr-defined]
    assert isinstance(problem, ImportCycleError)
    assert problem.cycle == ("CycleA", "CycleC", "CycleB", "CycleA")
    assert str(problem) == (
        "Modules import each other in a cycle: `CycleA` → `CycleC` → `CycleB` → `CycleA`. "
        "Hint: move what they share into a module that both import, or let one side talk to "
        "the other through events."
    )


def test_deep_import_chain_does_not_recurse() -> None:
    previous: list[type] = []
    for i in range(1000):
        previous = [module(imports=previous)(type(f"M{i}", (), {}))]
    app = App.build(previous[0])
    assert len(app.modules) == 1000


def test_same_type_from_two_modules() -> None:
    @module(providers=[scoped(InvoiceRepository)], exports=[InvoiceRepository])
    class Legacy: ...

    @module(providers=[scoped(InvoiceService)], imports=[ExportingSales, Legacy])
    class Billing: ...

    problem = only(Billing)
    assert isinstance(problem, DuplicateProviderError)
    assert str(problem) == (
        "Module `Billing` sees `InvoiceRepository` "
        "from `ExportingSales` and `Legacy`; a type "
        "must have one provider. Hint: keep one provider of `InvoiceRepository` visible to "
        "`Billing`: remove the others, stop exporting "
        "them, or use `many(...)` for a collection."
    )


def test_same_type_twice_in_one_module() -> None:
    @module(providers=[scoped(InvoiceRepository), singleton(InvoiceRepository)])
    class Sales2: ...

    problem = only(Sales2)
    assert isinstance(problem, DuplicateProviderError)
    assert problem.sources == ("Sales2", "Sales2")


def test_extension_without_hook() -> None:
    class Auditing:
        pass

    @module(extensions=[Auditing()])
    class Billing: ...

    problem = only(Billing)
    assert isinstance(problem, UnknownExtensionError)
    assert str(problem) == (
        "Extension `Auditing` in module "
        "`Billing` implements no known hook. Hint: "
        "subclass one of `OnModuleInit`, `OnAppInit`, `OnAppShutdown`, `OnModuleDestroy`, "
        "`OnWorkerExit`, `ProvidesBackgroundServices`, `OffersDefaults`, `ChecksGraph`."
    )


def test_singleton_depending_on_scoped_names_both_modules() -> None:
    @module(providers=[scoped(Session)], exports=[Session])
    class Database: ...

    @module(providers=[singleton(Cache)], imports=[Database])
    class Caching: ...

    problem = only(Caching)
    assert isinstance(problem, ScopeMismatchError)
    assert str(problem) == (
        "Singleton `Cache` in module `Caching` depends on scoped `Session` from module "
        "`Database`: a longer-lived object cannot hold a shorter-lived one. "
        "Hint: make `Cache` scoped, or make `Session` singleton."
    )


def test_export_of_something_not_provided() -> None:
    @module(exports=[InvoiceRepository])
    class Empty: ...

    problem = only(Empty)
    assert isinstance(problem, InvalidExportError)
    assert str(problem) == (
        "Module `Empty` exports "
        "`InvoiceRepository`, which it neither provides nor imports. Hint: add a provider for "
        "`InvoiceRepository` to `Empty`, import "
        "the module that exports it, or remove it from exports."
    )


def test_reexport_of_module_not_imported() -> None:
    @module(exports=[ExportingSales])
    class Facade: ...

    problem = only(Facade)
    assert isinstance(problem, InvalidExportError)
    assert "exports `ExportingSales`, which it neither provides nor imports" in str(problem)


def test_import_of_a_plain_class() -> None:
    class NotDecorated:
        pass

    @module(imports=[NotDecorated])
    class Root: ...

    problem = only(Root)
    assert isinstance(problem, NotAModuleError)
    assert isinstance(problem, TypeError)
    assert str(problem) == (
        "Module `Root` imports "
        "`NotDecorated`, which is not a module. "
        "Hint: decorate it with `@module(...)`, or pass a `DynamicModule`."
    )


def test_dynamic_module_registered_twice_differently() -> None:
    @module()
    class Database:
        @classmethod
        def register(cls, url: str) -> DynamicModule:
            return DynamicModule(cls, providers=[object_(url, provides=str)], settings=url)

    @module(imports=[Database.register("sqlite://a")])
    class A: ...

    @module(imports=[A, Database.register("sqlite://b")])
    class Root: ...

    problem = only(Root)
    assert isinstance(problem, ConflictingDynamicModuleError)
    assert str(problem) == (
        "Module `Database` is "
        "registered twice with different settings. Hint: call "
        "`Database.register(...)` "
        "once, in the module that owns the settings, and import plain "
        "`Database` everywhere else."
    )


class Hidden:
    pass


def test_unreadable_annotation_explains_type_checking_imports() -> None:
    class NeedsHidden:
        def __init__(self, hidden: NotImportable) -> None:  # type: ignore[name-defined]  # noqa: F821
            self.hidden = hidden

    @module(providers=[scoped(NeedsHidden)])
    class Root: ...

    problem = only(Root)
    assert isinstance(problem, InvalidProviderError)
    assert "not under `if TYPE_CHECKING:`" in str(problem)
    assert "NotImportable" in str(problem)


def test_every_problem_is_reported_at_once() -> None:
    class Auditing:
        pass

    @module(providers=[singleton(Cache), scoped(Session)], extensions=[Auditing()])
    class Caching: ...

    @module(providers=[scoped(InvoiceService)], imports=[Sales], exports=[Hidden])
    class Billing: ...

    @module(imports=[Caching, Billing, int])
    class Root: ...

    with pytest.raises(ModuleConfigurationError) as info:
        App.build(Root)
    kinds = sorted(type(p).__name__ for p in info.value.problems)
    assert kinds == [
        "InvalidExportError",
        "NotAModuleError",
        "NotExportedError",
        "ScopeMismatchError",
        "UnknownExtensionError",
    ]
    text = str(info.value)
    assert text.startswith("The app's modules have 5 problems:\n  1. ")
    assert text.count("\n") == 5
