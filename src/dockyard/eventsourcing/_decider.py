"""Functional event sourcing: a decider turns commands into events and folds events into state."""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from typing import Generic, TypeVar

__all__ = ["Decider"]

S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")


class Decider(abc.ABC, Generic[S, C, E]):
    """``decide(command, state) -> events`` and ``evolve(state, event) -> state``, both pure.

    The state is a plain value (a frozen dataclass, say), so it can be snapshotted as is.
    """

    @abc.abstractmethod
    def initial_state(self) -> S:
        """The state of a stream with no events."""

    @abc.abstractmethod
    def decide(self, command: C, state: S) -> Sequence[E]:
        """The events ``command`` causes in ``state``; raise to refuse the command."""

    @abc.abstractmethod
    def evolve(self, state: S, event: E) -> S:
        """The state after ``event``."""

    def fold(self, events: Iterable[E], state: S | None = None) -> S:
        """Evolve ``state`` (the initial state by default) through ``events``."""
        current = self.initial_state() if state is None else state
        evolve = self.evolve
        for event in events:
            current = evolve(current, event)
        return current
