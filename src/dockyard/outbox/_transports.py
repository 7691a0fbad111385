"""``Transports``: the transports of an app by name, and which one a destination goes to.

``OutboxModule.register(transport=rabbit, transports={"nats": nats})``: a destination
``"nats://orders"`` goes to ``nats``; an unprefixed one, or one prefixed with the first
transport's scheme (``"rabbit://orders"``), to the first. The relay runs one loop per
transport, each claiming only its destinations (``Destinations``), so a slow or unreachable
broker holds back only its own messages. See ``docs/design/outbox-relay.md``, "Several
transports".
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from dockyard._errors.modules import ModuleProblem, UnknownTransportError
from dockyard._type_name import type_name
from dockyard.outbox._destinations import TRANSPORT_NAME, Destinations
from dockyard.outbox._renamed import renamed
from dockyard.outbox._routing import route_of
from dockyard.transport._port import Transport

if typing.TYPE_CHECKING:
    from dockyard.modules import ModuleGraph

__all__ = [
    "NamedTransport",
    "Transports",
    "destination_problems",
    "relay_name",
    "route_problems",
    "transports_of",
]

_PREFIX = re.compile(r"([a-z][a-z0-9+.-]*)://")


@dataclass(frozen=True, slots=True)
class NamedTransport:
    """One transport of the app, as its relay loop and its consumers use it.

    Attributes:
        name: The destination prefix that picks it (``"nats"`` for ``"nats://orders"``).
        transport: The transport itself (as given to ``OutboxModule.register``).
        publishing: What the relay and consumers call: ``transport``, or, when ``name`` is
            not the transport's own scheme, ``transport`` with ``name://`` taken off every
            destination (the broker knows ``"events"``, not ``"analytics://events"``).
        destinations: What its relay loop claims.
        default: Whether unprefixed destinations go to it (the first transport).
    """

    name: str
    transport: Transport
    publishing: Transport
    destinations: Destinations
    default: bool


class Transports:
    """The app's transports, the first being the default (exported by ``OutboxModule``)."""

    __slots__ = ("_by_name", "_first")

    def __init__(self, first: Transport, named: Mapping[str, Transport] | None = None) -> None:
        """
        Raises:
            ValueError: A name is not a URL scheme (``[a-z][a-z0-9+.-]*``), is the first
                transport's scheme, or one transport is given twice.
        """
        named = dict(named or {})
        first_name = scheme_of(first) or "default"
        _check_names(first, first_name, named)
        prefixes = tuple(f"{name}://" for name in named)
        self._first = NamedTransport(
            first_name, first, first, Destinations(prefixes, exclude=True), default=True
        )
        self._by_name: dict[str, NamedTransport] = {first_name: self._first}
        for name, transport in named.items():
            own = scheme_of(transport) == name
            self._by_name[name] = NamedTransport(
                name,
                transport,
                transport if own else renamed(transport, f"{name}://"),
                Destinations((f"{name}://",), scope=name),
                default=False,
            )

    @property
    def default(self) -> NamedTransport:
        """The first transport: unprefixed destinations go to it."""
        return self._first

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __iter__(self) -> Iterator[NamedTransport]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def find(self, destination: str) -> NamedTransport | None:
        """The transport ``destination`` goes to, or ``None`` when its prefix names none."""
        match = _PREFIX.match(destination)
        if match is None:
            return self._first
        return self._by_name.get(match.group(1))

    def unknown(self, destinations: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The ``(where, destination)`` pairs whose destination names no transport here."""
        return [(where, d) for where, d in destinations if self.find(d) is None]


def _check_names(first: Transport, first_name: str, named: Mapping[str, Transport]) -> None:
    seen = {id(first)}
    for name, transport in named.items():
        problem = ""
        if not TRANSPORT_NAME.fullmatch(name):
            problem = "is not a URL scheme (lowercase letters, digits, '+', '-', '.')"
        elif name == first_name:
            problem = "is the first transport's scheme (its destinations already go there)"
        elif id(transport) in seen:
            problem = "names a transport given under another name too"
        if problem:
            msg = f"OutboxModule.register(transports=...): the name {name!r} {problem}"
            raise ValueError(msg)
        seen.add(id(transport))


def scheme_of(transport: object) -> str | None:
    """The transport's ``scheme`` attribute (``"rabbit"``, ``"nats"``...), else ``None``."""
    scheme = getattr(transport, "scheme", None)
    return scheme if isinstance(scheme, str) and TRANSPORT_NAME.fullmatch(scheme) else None


def relay_name(named: NamedTransport) -> str:
    """The relay loop's service name: ``outbox-relay`` for the first transport (as in an app
    with one), ``outbox-relay:<name>`` for each other one."""
    return "outbox-relay" if named.default else f"outbox-relay:{named.name}"


def transports_of(graph: ModuleGraph) -> Transports | None:
    """The transports of the app's ``OutboxModule`` (its extension holds them), or ``None``
    (no outbox)."""
    for node in graph.all_nodes:
        for extension in node.extensions:
            found = getattr(extension, "transports", None)
            if isinstance(found, Transports):
                return found
    return None


def destination_problems(
    transports: Transports, destinations: Iterable[tuple[str, str]]
) -> list[ModuleProblem]:
    """An ``UnknownTransportError`` for each ``(where, destination)`` naming no transport.

    A first transport without a scheme (``InMemoryTransport``, standing in for any broker in
    tests) takes every prefix no other transport is named by, as an app with one always did.
    """
    if scheme_of(transports.default.transport) is None:
        return []
    return [
        UnknownTransportError(where, destination, transports.names)
        for where, destination in destinations
        if transports.find(destination) is None
    ]


def route_problems(graph: ModuleGraph, transports: Transports) -> list[ModuleProblem]:
    """An ``UnknownTransportError`` for each route whose destination names no transport."""
    routes = (
        (f"Route `{type_name(found.message_type)}` (module `{node.name}`)", found.destination)
        for node in graph.all_nodes
        for handler in node.handlers
        if (found := route_of(handler)) is not None
    )
    return destination_problems(transports, routes)
