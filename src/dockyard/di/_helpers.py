"""The provider helpers users write in ``@module(providers=[...])``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dockyard.di._spec import Condition, Lifetime, ProviderKind, ProviderSpec

__all__ = ["contextual", "many", "object_", "scoped", "singleton", "transient"]


def _factory(
    lifetime: Lifetime,
    interface: Any,
    implementation: object,
    when: Condition,
) -> ProviderSpec:
    if implementation is None:
        if isinstance(interface, type):
            # `scoped(OrderService)`: the class provides itself.
            return ProviderSpec(ProviderKind.FACTORY, interface, interface, lifetime, when)
        if callable(interface):
            # `scoped(make_session)`: a factory function; its return annotation is the type.
            return ProviderSpec(ProviderKind.FACTORY, None, interface, lifetime, when)
        msg = f"expected a class or a factory function, got {interface!r}"
        raise TypeError(msg)
    if not callable(implementation):
        msg = f"the implementation of {interface!r} must be a class or a factory function"
        raise TypeError(msg)
    return ProviderSpec(ProviderKind.FACTORY, interface, implementation, lifetime, when)


def singleton(
    interface: Any,
    implementation: Callable[..., Any] | None = None,
    /,
    *,
    when: Condition = True,
) -> ProviderSpec:
    """One instance for the whole app.

    Args:
        interface: The type dependents ask for; alone, a class that provides itself or a
            factory function whose return annotation names the type.
        implementation: The class or factory that builds it, when it differs from ``interface``.
        when: Keep this provider only if true (a bool, or a callable evaluated at build time).
    """
    return _factory(Lifetime.SINGLETON, interface, implementation, when)


def scoped(
    interface: Any,
    implementation: Callable[..., Any] | None = None,
    /,
    *,
    when: Condition = True,
) -> ProviderSpec:
    """One instance per request scope (``app.scope()``); see :func:`singleton` for arguments."""
    return _factory(Lifetime.SCOPED, interface, implementation, when)


def transient(
    interface: Any,
    implementation: Callable[..., Any] | None = None,
    /,
    *,
    when: Condition = True,
) -> ProviderSpec:
    """A new instance each time it is resolved, inside a request scope.

    See :func:`singleton` for arguments.
    """
    return _factory(Lifetime.TRANSIENT, interface, implementation, when)


def object_(instance: object, /, *, provides: Any = None, when: Condition = True) -> ProviderSpec:
    """A ready-made instance, shared app-wide; ``provides`` defaults to its class."""
    return ProviderSpec(
        ProviderKind.OBJECT,
        type(instance) if provides is None else provides,
        instance,
        Lifetime.SINGLETON,
        when,
    )


def contextual(
    provides: Any,
    /,
    *,
    lifetime: Lifetime = Lifetime.SCOPED,
    when: Condition = True,
) -> ProviderSpec:
    """A value given when the scope is opened: ``app.scope(context={provides: value})``.

    With ``lifetime=Lifetime.SINGLETON`` the value comes from ``App.build(..., context=...)``.
    """
    if lifetime is Lifetime.TRANSIENT:
        msg = "a contextual value is either app-wide (SINGLETON) or per scope (SCOPED)"
        raise TypeError(msg)
    return ProviderSpec(ProviderKind.CONTEXT, provides, None, lifetime, when)


def many(
    interface: Any,
    /,
    *implementations: Callable[..., Any],
    lifetime: Lifetime = Lifetime.SCOPED,
    when: Condition = True,
) -> ProviderSpec:
    """Several implementations of one interface, resolved together as ``Sequence[interface]``.

    Several ``many()`` for the same interface in one module add to one collection, in order.
    """
    if not implementations:
        msg = f"many({interface!r}) needs at least one implementation"
        raise TypeError(msg)
    return ProviderSpec(
        ProviderKind.MANY, interface, None, lifetime, when, items=tuple(implementations)
    )
