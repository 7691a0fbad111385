"""Handler classes as their modules declare them, whether or not an app imports the module.

``@module(handlers=[...])`` records each handler here. When ``send`` finds no handler for a
type, the error can then say that a module does declare one and the app does not import it
(waku's quick-start, ported literally, meets exactly this). Weak references: a module class
that goes away takes its entries with it.
"""

from __future__ import annotations

import weakref

from dockyard._type_name import type_name
from dockyard.messaging._introspect import (
    HandlerKind,
    generic_args,
    handler_kind,
    message_class,
)

__all__ = ["declare_handlers", "declared_handlers_of"]

_DECLARED: weakref.WeakKeyDictionary[type, weakref.WeakSet[type]] = weakref.WeakKeyDictionary()
"""Handler class -> the module classes that list it."""


def declare_handlers(module_class: type, handlers: tuple[type, ...]) -> None:
    """Record that ``module_class`` lists ``handlers`` (called by ``@module``)."""
    for handler in handlers:
        if isinstance(handler, type):
            _DECLARED.setdefault(handler, weakref.WeakSet()).add(module_class)


def declared_handlers_of(message_type: type, kinds: frozenset[HandlerKind]) -> list[str]:
    """``"`Handler` in module `Module` (package.module)"`` for each declared handler of one
    of ``kinds`` that takes ``message_type``, sorted."""
    found: set[str] = set()
    for handler, modules in list(_DECLARED.items()):
        kind = handler_kind(handler)
        if kind is None or kind[0] not in kinds:
            continue
        args = generic_args(handler, kind[1])
        if not args or message_class(args[0]) is not message_type:
            continue
        for owner in list(modules):
            found.add(
                f"`{type_name(handler)}` in module `{owner.__qualname__}` ({owner.__module__})"
            )
    return sorted(found)
