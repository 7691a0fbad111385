"""Which background services a worker runs: ``--only`` and ``--skip`` glob patterns."""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from dockyard._errors.configuration import UnknownServiceError

if TYPE_CHECKING:
    from dockyard.modules._extensions import BackgroundService

__all__ = ["select_services"]


def select_services(
    services: Sequence[BackgroundService], only: Sequence[str] = (), skip: Sequence[str] = ()
) -> list[BackgroundService]:
    """The services whose names match an ``only`` pattern (all of them if none is given) and
    no ``skip`` pattern: case-sensitive globs (``*``, ``?``, ``[…]``) over the whole name.

    Raises:
        UnknownServiceError: A pattern matches none of ``services`` (each such pattern is
            named), or the patterns leave nothing to run.
    """
    names = [service.name for service in services]
    unmatched = [
        pattern
        for pattern in (*only, *skip)
        if not any(fnmatchcase(name, pattern) for name in names)
    ]
    if unmatched:
        raise UnknownServiceError(unmatched, names)
    chosen = [
        service
        for service in services
        if (not only or any(fnmatchcase(service.name, p) for p in only))
        and not any(fnmatchcase(service.name, p) for p in skip)
    ]
    if (only or skip) and not chosen:
        raise UnknownServiceError([], names)
    return chosen
