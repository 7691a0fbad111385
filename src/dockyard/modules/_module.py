"""``@module`` and dynamic modules: how a group of providers declares its boundary."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dockyard._type_name import type_name
from dockyard.di._spec import ProviderSpec
from dockyard.messaging._declared import declare_handlers
from dockyard.messaging._function import as_handler_class

__all__ = [
    "Defaults",
    "DynamicModule",
    "ModuleLike",
    "ModuleMetadata",
    "get_metadata",
    "module",
]

_METADATA_ATTR = "__dockyard_module__"

T = TypeVar("T", bound=type)


@dataclass(frozen=True, slots=True)
class ModuleMetadata:
    """What ``@module`` recorded on a class."""

    target: type
    providers: tuple[ProviderSpec, ...] = ()
    imports: tuple[ModuleLike, ...] = ()
    exports: tuple[Any, ...] = ()
    """Types this module lets importers see, and modules it re-exports."""
    extensions: tuple[object, ...] = ()
    handlers: tuple[type, ...] = ()
    """Message handler classes; each is also provided (scoped) inside this module."""
    is_global: bool = False
    """A global module's exports are visible to every module without importing it."""

    @property
    def name(self) -> str:
        return type_name(self.target)

    def merged(self, dynamic: DynamicModule) -> ModuleMetadata:
        return ModuleMetadata(
            target=self.target,
            providers=self.providers + dynamic.providers,
            imports=self.imports + dynamic.imports,
            exports=self.exports + dynamic.exports,
            extensions=self.extensions + dynamic.extensions,
            handlers=self.handlers + dynamic.handlers,
            is_global=self.is_global if dynamic.is_global is None else dynamic.is_global,
        )


@dataclass(frozen=True, slots=True, eq=False)
class DynamicModule:
    """A module configured at import time, e.g. ``DatabaseModule.register(url=...)``.

    It adds to the ``@module`` declaration of ``module``; everywhere else the plain class is
    imported and refers to this configured copy. Registering one module twice with different
    settings is a build error.
    """

    module: type
    providers: tuple[ProviderSpec, ...] = ()
    imports: tuple[ModuleLike, ...] = ()
    exports: tuple[Any, ...] = ()
    extensions: tuple[object, ...] = ()
    handlers: tuple[type, ...] = ()
    is_global: bool | None = None
    settings: Any = field(default=None)
    """Anything that identifies the configuration; two registrations with equal settings are
    the same registration."""
    resolve: Callable[[Defaults], DynamicModule] | None = None
    """For a registration that depends on the rest of the app: called once every other module
    is known, with what their ``OffersDefaults`` extensions offer; its result is the
    registration used (it may import modules, not resolve again)."""

    def __init__(
        self,
        module: type,
        *,
        providers: Iterable[ProviderSpec] = (),
        imports: Iterable[ModuleLike] = (),
        exports: Iterable[Any] = (),
        extensions: Iterable[object] = (),
        handlers: Iterable[type | Callable[..., Any]] = (),
        is_global: bool | None = None,
        settings: Any = None,
        resolve: Callable[[Defaults], DynamicModule] | None = None,
    ) -> None:
        object.__setattr__(self, "module", module)
        object.__setattr__(self, "providers", tuple(providers))
        object.__setattr__(self, "imports", tuple(imports))
        object.__setattr__(self, "exports", tuple(exports))
        object.__setattr__(self, "extensions", tuple(extensions))
        object.__setattr__(self, "handlers", tuple(map(as_handler_class, handlers)))
        object.__setattr__(self, "is_global", is_global)
        object.__setattr__(self, "settings", settings)
        object.__setattr__(self, "resolve", resolve)

    def same_registration(self, other: DynamicModule) -> bool:
        if self is other:
            return True
        if self.settings is not None or other.settings is not None:
            return bool(self.settings == other.settings)
        return False


ModuleLike = type | DynamicModule

Defaults = Callable[[type], object | None]
"""``defaults(kind)``: the first default for ``kind`` a module of the app offers, or ``None``."""


def module(
    *,
    providers: Iterable[ProviderSpec] = (),
    imports: Iterable[ModuleLike] = (),
    exports: Iterable[Any] = (),
    extensions: Iterable[object] = (),
    handlers: Iterable[type | Callable[..., Any]] = (),
    is_global: bool = False,
) -> Callable[[T], T]:
    """Declare a class as a module.

    Args:
        providers: What this module builds (``singleton``, ``scoped``, ``transient``,
            ``object_``, ``contextual``, ``many``).
        imports: Modules whose exports this module's providers may use.
        exports: Types importers may use, and imported modules to re-export.
        extensions: Lifecycle hooks (``OnModuleInit``, ``OnAppInit``, ...).
        handlers: Message handler classes (and ``@handler`` functions) registered by this
            module.
        is_global: Make this module's exports visible everywhere without an import.
    """

    def decorate(cls: T) -> T:
        metadata = ModuleMetadata(
            target=cls,
            providers=tuple(providers),
            imports=tuple(imports),
            exports=tuple(exports),
            extensions=tuple(extensions),
            handlers=tuple(map(as_handler_class, handlers)),
            is_global=is_global,
        )
        setattr(cls, _METADATA_ATTR, metadata)
        if metadata.handlers and isinstance(cls, type):
            declare_handlers(cls, metadata.handlers)
        return cls

    return decorate


def get_metadata(obj: object) -> ModuleMetadata | None:
    """The ``@module`` metadata of a class, or ``None`` if it is not a module."""
    if not isinstance(obj, type):
        return None
    # Read the class's own attribute: a subclass of a module is not itself a module.
    metadata = obj.__dict__.get(_METADATA_ATTR)
    return metadata if isinstance(metadata, ModuleMetadata) else None
