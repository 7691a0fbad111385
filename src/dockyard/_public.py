"""Public classes and functions show the path users import them from.

``dockyard.messaging.CommandHandler`` in reprs, tracebacks, Dishka's errors and API docs, not
``dockyard.messaging._handlers.CommandHandler``. Every public package ends its ``__init__``
with ``use_public_paths(__name__, __all__)``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable
from types import FunctionType

__all__ = ["use_public_paths"]


def use_public_paths(package: str, names: Iterable[str]) -> None:
    """Set ``__module__`` of what ``package`` exports from its private modules to ``package``.

    Only objects defined under ``package`` in a ``_``-prefixed module are moved, so the
    deepest public package wins: ``dockyard`` re-exports ``CommandHandler`` after
    ``dockyard.messaging`` has claimed it. Pickle still finds them (it looks up
    ``package.qualname``, which the package exports). A class's own string annotations are
    evaluated first, in the module that defined them: ``typing.get_type_hints``, msgspec and
    pydantic read them in ``sys.modules[cls.__module__]``, where imports like ``datetime``
    are not.
    """
    namespace = vars(sys.modules[package])
    prefix = f"{package}."
    for name in names:
        exported = namespace[name]
        if not isinstance(exported, type | FunctionType):
            continue
        home = exported.__module__
        if not home.startswith(prefix) or not any(
            part.startswith("_") for part in home[len(prefix) :].split(".")
        ):
            continue
        if isinstance(exported, type):
            _evaluate_annotations(exported, vars(sys.modules[home]))
        exported.__module__ = package


def _evaluate_annotations(cls: type, module_globals: dict[str, object]) -> None:
    annotations = inspect.get_annotations(cls)  # the class's own, not its bases'
    if not any(isinstance(hint, str) for hint in annotations.values()):
        return
    local_names = dict(vars(cls))
    for field, hint in annotations.items():
        if isinstance(hint, str):
            try:
                annotations[field] = eval(hint, module_globals, local_names)  # noqa: S307 - as typing.get_type_hints does
            except NameError:
                continue  # a name imported for type checkers only: unresolvable either way
    cls.__annotations__ = annotations
