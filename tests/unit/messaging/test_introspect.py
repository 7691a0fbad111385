"""Reading message types from generic bases."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from dockyard.messaging import Command, PipelineBehavior, RequestHandler
from dockyard.messaging._introspect import generic_args, message_class

M = TypeVar("M")
R = TypeVar("R")


class Box(Command[int], Generic[M]):
    pass


class Layer(RequestHandler[M, R], Generic[R, M]):  # parameters swapped on purpose
    async def handle(self, request: M, /) -> R:
        raise NotImplementedError


class Leaf(Layer[str, Box[int]]):
    pass


def test_arguments_follow_generic_subclasses() -> None:
    assert generic_args(Leaf, RequestHandler) == (Box[int], str)
    assert message_class(Box[int]) is Box
    assert message_class(M) is None
    assert message_class(Any) is None
    assert message_class("Box") is None


def test_unparametrised_base_gives_its_type_variables() -> None:
    class Bare(PipelineBehavior):  # type: ignore[type-arg]
        async def handle(self, message: Any, call_next: Any, /) -> Any: ...

    args = generic_args(Bare, PipelineBehavior)
    assert args is not None
    assert all(isinstance(a, TypeVar) for a in args)
    assert generic_args(Bare, RequestHandler) is None
