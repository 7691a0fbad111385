"""Saga definitions are checked all at once when registered, and drawn as Mermaid diagrams."""

from __future__ import annotations

import pickle
import re
import sys
import types
from pathlib import Path

import pytest
from checkout_sagas import (
    CHECKOUT,
    Charge,
    ChargeBackup,
    Checkout,
    Journal,
    Notify,
    Reserve,
    Ship,
    build,
)

from dockyard import App, module
from dockyard.exceptions import (
    InvalidSagaError,
    MissingProviderError,
    ModuleConfigurationError,
    SagaNotRegisteredError,
)
from dockyard.retry import RetryPolicy
from dockyard.sagas import Saga, SagaControl, SagasModule, SagaStep, pivot, step


class NeedsGateway(SagaStep[Checkout]):
    def __init__(self, gateway: Journal) -> None:
        self._gateway = gateway

    async def act(self, state: Checkout) -> None:
        del state


class NotAStep:
    async def act(self, state: Checkout) -> None:
        del state


def test_every_problem_of_every_saga_is_reported_at_once() -> None:
    broken = Saga(
        "checkout",
        version=0,
        state=Checkout,
        steps=[
            step("reserve", Reserve),
            step("reserve", Charge, fallback=step("backup", ChargeBackup)),
            pivot("ship", Ship),
            step("refund", Charge),  # a compensation after the pivot
            pivot("ship-again", Ship),
            step("odd", NotAStep),  # type: ignore[arg-type]
        ],
        compatible_with=[0],
    )
    twin = Saga("trip", version=1, state=Checkout, steps=[step("notify", Notify)])
    empty = Saga("trip", version=1, state=Checkout, steps=[])
    with pytest.raises(InvalidSagaError) as raised:
        SagasModule.register(sagas=[broken, twin, empty])
    error = raised.value
    assert list(error.problems) == [
        "Saga `checkout` has version 0: versions are integers from 1",
        "Saga `checkout` lists its own version 0 in `compatible_with`",
        "Saga `checkout` has two steps named `reserve`; step names are unique",
        (
            "Saga `checkout`: step `refund` comes after the pivot `ship`, but `Charge` has a "
            "`compensate`, which would never run (after the pivot, failures retry forward); "
            "remove it, or move the pivot"
        ),
        (
            "Saga `checkout` has two pivots, `ship` and `ship-again`; a saga has one point of "
            "no return"
        ),
        "Saga `checkout`: step `odd` is run by `NotAStep`, which is not a `SagaStep` subclass",
        "Saga `trip` has no steps",
        "two sagas are named `trip`; saga names are unique",
    ]
    assert str(error).startswith("8 problems in the saga definitions:\n  1. Saga `checkout`")
    assert isinstance(error, TypeError)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.problems == error.problems


def test_a_pivot_with_a_compensation_and_nested_fallbacks_are_refused() -> None:
    saga = Saga(
        "checkout",
        version=1,
        state=Checkout,
        steps=[
            step("charge", Charge, fallback=step("b", ChargeBackup, fallback=step("c", Notify))),
            pivot("reserve", Reserve, fallback=pivot("x", Ship)),
        ],
    )
    assert saga.problems() == [
        (
            "Saga `checkout`: the fallback `b` of `charge` has a fallback of its own; one "
            "fallback per step"
        ),
        (
            "Saga `checkout`: the fallback `x` is declared with `pivot(...)`; mark the primary "
            "step `reserve` as the pivot instead"
        ),
        (
            "Saga `checkout`: the pivot `reserve` is run by `Reserve`, which has a "
            "`compensate`, but nothing is undone past the point of no return; remove it, or "
            "make an earlier step the pivot"
        ),
    ]


def test_a_valid_definition_has_no_problems() -> None:
    assert CHECKOUT.problems() == []
    assert CHECKOUT.accepts(1)
    assert not CHECKOUT.accepts(2)
    assert Saga(
        "c", version=3, state=Checkout, steps=[step("n", Notify)], compatible_with=[1, 2]
    ).accepts(1)


def test_step_handlers_are_checked_against_the_modules_boundary_when_the_app_builds() -> None:
    saga = Saga("gateway", version=1, state=Checkout, steps=[step("pay", NeedsGateway)])
    registered = SagasModule.register(sagas=[saga])  # imports nothing that provides Journal

    @module(imports=[registered])
    class Root: ...

    with pytest.raises(ModuleConfigurationError) as raised:
        App.build(Root)
    (problem,) = raised.value.problems
    assert isinstance(problem, MissingProviderError)
    assert (problem.dependency, problem.required_by) == (Journal, "`NeedsGateway`")


def test_the_diagram_draws_steps_fallbacks_compensations_and_the_pivot() -> None:
    assert CHECKOUT.diagram() == "\n".join(
        [
            "stateDiagram-v2",
            '    state "reserve" as s0',
            '    state "undo reserve" as undo_s0',
            '    state "charge" as s1',
            '    state "undo charge" as undo_s1',
            '    state "charge-backup (fallback)" as s1_fallback',
            '    state "undo charge-backup" as undo_s1_fallback',
            '    state "ship (pivot)" as s2',
            '    state "notify" as s3',
            '    state "completed" as completed',
            '    state "compensated" as compensated',
            '    state "failed (parked)" as failed',
            "    [*] --> s0",
            "    s0 --> s1 : done",
            "    s0 --> compensated : gave up",
            "    undo_s0 --> compensated : done",
            "    undo_s0 --> failed : gave up",
            "    s1 --> s2 : done",
            "    s1 --> s1_fallback : gave up",
            "    s1_fallback --> s2 : done",
            "    s1_fallback --> undo_s0 : gave up",
            "    undo_s1 --> undo_s0 : done",
            "    undo_s1 --> failed : gave up",
            "    undo_s1_fallback --> undo_s0 : done",
            "    undo_s1_fallback --> failed : gave up",
            "    s2 --> s3 : done",
            "    s2 --> undo_s1 : gave up",
            "    s2 --> undo_s1_fallback : gave up",
            "    s3 --> completed : done",
            "    s3 --> failed : gave up",
            "    completed --> [*]",
            "    compensated --> [*]",
        ]
    )


def test_compensation_skips_steps_with_nothing_to_undo_in_the_diagram() -> None:
    saga = Saga(
        "c",
        version=1,
        state=Checkout,
        steps=[step("reserve", Reserve), step("notify", Notify), step("ship", Ship)],
        retry=RetryPolicy(1),
    )
    drawing = saga.diagram()
    assert "    s2 --> undo_s0 : gave up" in drawing  # past `notify`, which has no undo
    assert "undo_s1" not in drawing


async def test_control_draws_registered_sagas_by_name() -> None:
    async with build(Journal()) as app:
        control = await app.get(SagaControl)
        assert control.names == ["checkout"]
        assert control.diagram("checkout") == CHECKOUT.diagram()
        with pytest.raises(SagaNotRegisteredError, match="registered: `checkout`"):
            control.diagram("refund")


def test_the_diagrams_shown_in_the_docs_are_the_ones_the_docs_sagas_draw() -> None:
    """Each ``checkout`` saga of the page (the first one, the remote step's) has its diagram
    shown, as it draws it."""
    text = (Path(__file__).resolve().parents[3] / "docs" / "sagas.md").read_text("utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    shown = re.findall(r"^```text\n(stateDiagram-v2\n.*?)^```", text, re.MULTILINE | re.DOTALL)
    drawn: list[str] = []
    for code in (b for b in blocks if "\ncheckout = Saga(" in b):
        module = types.ModuleType("docs_sagas_block")
        sys.modules[module.__name__] = module  # Dishka and dataclasses look the module up
        try:
            exec(compile(code, "docs/sagas.md", "exec"), module.__dict__)
            saga = module.__dict__["checkout"]
        finally:
            del sys.modules[module.__name__]
        assert isinstance(saga, Saga)
        drawn.append(saga.diagram())
    assert len(drawn) == 2
    shown = [d.rstrip("\n") for d in shown]  # also an instance's path (drawn from its log)
    assert all(d in shown for d in drawn), (shown, drawn)
