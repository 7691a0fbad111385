"""Given/when/then specifications for event-sourced behaviour, without a store.

AggregateSpec(Order).given(OrderPlaced(...)).when(lambda o: o.ship()).then(OrderShipped(...))
DeciderSpec(CartDecider()).given(ItemAdded(...)).when(Checkout()).then_raises(EmptyCartError)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from dockyard.eventsourcing._aggregate import Aggregate
from dockyard.eventsourcing._decider import Decider

__all__ = ["AggregateSpec", "DeciderSpec", "SpecFailedError"]

A = TypeVar("A", bound=Aggregate)
S = TypeVar("S")
C = TypeVar("C")
E = TypeVar("E")


class SpecFailedError(AssertionError):
    """A given/when/then expectation did not hold; the message shows expected and actual."""


def _show(events: Sequence[object]) -> str:
    return "[" + ", ".join(repr(e) for e in events) + "]" if events else "[] (no events)"


def _compare(expected: Sequence[object], actual: Sequence[object]) -> None:
    if list(expected) != list(actual):
        msg = f"expected events {_show(expected)}\n     but got {_show(actual)}"
        raise SpecFailedError(msg)


def _check_raises(error: type[BaseException], raised: BaseException | None, got: str) -> None:
    if raised is None:
        msg = f"expected {error.__name__} to be raised, but the command produced {got}"
        raise SpecFailedError(msg)
    if not isinstance(raised, error):
        msg = f"expected {error.__name__}, but {type(raised).__name__} was raised: {raised}"
        raise SpecFailedError(msg) from raised


class AggregateSpec(Generic[A]):
    """Given past events, when a command method runs, then these events (or this error)."""

    def __init__(self, aggregate_type: type[A], aggregate_id: str = "spec") -> None:
        self._type = aggregate_type
        self._id = aggregate_id
        self._given: list[object] = []
        self._raised: BaseException | None = None
        self._aggregate: A | None = None

    def given(self, *events: object) -> AggregateSpec[A]:
        self._given.extend(events)
        return self

    def when(self, command: Callable[[A], Any]) -> AggregateSpec[A]:
        if self._given:
            aggregate = self._type.replay(self._id, self._given)
        else:
            aggregate = self._type(self._id)
        try:
            command(aggregate)
        except Exception as exc:  # noqa: BLE001 - recorded for then_raises
            self._raised = exc
        self._aggregate = aggregate
        return self

    def then(self, *events: object) -> A:
        """Assert the new events; return the aggregate for further checks on its state."""
        aggregate = self._require_when()
        if self._raised is not None:
            msg = f"expected events {_show(events)}, but the command raised {self._raised!r}"
            raise SpecFailedError(msg) from self._raised
        _compare(events, aggregate.pending_events)
        return aggregate

    def then_raises(self, error: type[BaseException]) -> BaseException:
        aggregate = self._require_when()
        _check_raises(error, self._raised, _show(aggregate.pending_events))
        assert self._raised is not None
        return self._raised

    def _require_when(self) -> A:
        if self._aggregate is None:
            msg = "call .when(...) before .then(...)"
            raise SpecFailedError(msg)
        return self._aggregate


class DeciderSpec(Generic[S, C, E]):
    """Given past events, when a command is decided, then these events (or this error)."""

    def __init__(self, decider: Decider[S, C, E]) -> None:
        self._decider = decider
        self._given: list[E] = []
        self._decided: Sequence[E] | None = None
        self._raised: BaseException | None = None

    def given(self, *events: E) -> DeciderSpec[S, C, E]:
        self._given.extend(events)
        return self

    def when(self, command: C) -> DeciderSpec[S, C, E]:
        state = self._decider.fold(self._given)
        try:
            self._decided = self._decider.decide(command, state)
        except Exception as exc:  # noqa: BLE001 - recorded for then_raises
            self._raised = exc
            self._decided = ()
        return self

    def then(self, *events: E) -> S:
        """Assert the decided events; return the state after them."""
        if self._decided is None:
            msg = "call .when(...) before .then(...)"
            raise SpecFailedError(msg)
        if self._raised is not None:
            msg = f"expected events {_show(events)}, but the command raised {self._raised!r}"
            raise SpecFailedError(msg) from self._raised
        _compare(events, self._decided)
        return self._decider.fold([*self._given, *self._decided])

    def then_raises(self, error: type[BaseException]) -> BaseException:
        if self._decided is None:
            msg = "call .when(...) before .then_raises(...)"
            raise SpecFailedError(msg)
        _check_raises(error, self._raised, _show(self._decided))
        assert self._raised is not None
        return self._raised
