"""The root of the tree, and the one place that makes every error survive a process boundary."""

from __future__ import annotations

from typing import Any

__all__ = ["DockyardError"]


class DockyardError(Exception):
    """The root of every error dockyard raises.

    A subclass stores its fields as attributes, passes them to ``super().__init__`` (they are
    its ``args``, so ``repr`` shows them) and renders its message in ``__str__``.
    """

    def __init__(self, *fields: object) -> None:
        # BaseException's own, not the next builtin's: OSError (ConnectionError, TimeoutError)
        # would read two fields as `errno` and `strerror`, ImportError one as `msg`.
        BaseException.__init__(self, *fields)

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt without calling `__init__`, its fields restored from `__dict__`: whatever
        # the constructor's signature (keyword-only, defaults, normalised values), the copy
        # has the same fields, so the same message. The default calls `cls(*args)`.
        return _restore, (type(self), self.args), self.__dict__


def _restore(cls: type[DockyardError], args: tuple[object, ...]) -> DockyardError:
    error = cls.__new__(cls)
    error.args = args  # set here: OSError's `__new__` leaves them empty for subclasses
    return error
