"""Mermaid state diagrams of saga definitions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dockyard.sagas._step import is_compensable

if TYPE_CHECKING:  # annotations only: the definition imports this module to draw itself
    from dockyard.sagas._definition import Saga, Step

__all__ = ["mermaid"]


def mermaid(saga: Saga[Any]) -> str:
    """``stateDiagram-v2`` text: each step and fallback, the undo states of steps that have a
    ``compensate`` (but the last step: nothing after it can fail), and the ends (completed,
    compensated, failed)."""
    positions: list[list[Step[Any]]] = [
        [s, s.fallback] if s.fallback is not None else [s] for s in saga.steps
    ]
    ids: dict[str, str] = {}
    lines = ["stateDiagram-v2"]
    for position, branches in enumerate(positions):
        for number, branch in enumerate(branches):
            ids[branch.name] = f"s{position}" + ("_fallback" if number else "")
            label = branch.name + (" (pivot)" if branch.pivot else "")
            label += " (fallback)" if number else ""
            lines.append(f'    state "{_quoted(label)}" as {ids[branch.name]}')
            if is_compensable(branch.handler) and position < len(positions) - 1:
                lines.append(f'    state "undo {_quoted(branch.name)}" as {_undo(ids, branch)}')
    lines += [
        '    state "completed" as completed',
        '    state "compensated" as compensated',
        '    state "failed (parked)" as failed',
    ]
    if not positions:
        return "\n".join(lines)
    lines.append(f"    [*] --> {ids[positions[0][0].name]}")
    pivot_at = next((p for p, b in enumerate(positions) if b[0].pivot), None)
    for position, branches in enumerate(positions):
        following = positions[position + 1][0] if position + 1 < len(positions) else None
        done = ids[following.name] if following is not None else "completed"
        after_pivot = pivot_at is not None and position > pivot_at
        for number, branch in enumerate(branches):
            here = ids[branch.name]
            lines.append(f"    {here} --> {done} : done")
            if number == 0 and len(branches) > 1:
                lines.append(f"    {here} --> {ids[branches[1].name]} : gave up")
                continue
            if after_pivot:
                lines.append(f"    {here} --> failed : gave up")
                continue
            lines.extend(
                f"    {here} --> {target} : gave up"
                for target in _compensation(positions, ids, position)
            )
        for branch in branches:
            if is_compensable(branch.handler) and following is not None:
                undo = _undo(ids, branch)
                lines.extend(
                    f"    {undo} --> {target} : done"
                    for target in _compensation(positions, ids, position)
                )
                lines.append(f"    {undo} --> failed : gave up")
    lines += ["    completed --> [*]", "    compensated --> [*]"]
    return "\n".join(lines)


def _compensation(positions: list[list[Step[Any]]], ids: dict[str, str], before: int) -> list[str]:
    """Where compensation goes from a failure at ``before``: the undo states of the nearest
    earlier step that has one, and further back past branches that have none."""
    targets: list[str] = []
    for position in range(before - 1, -1, -1):
        branches = positions[position]
        undoable = [b for b in branches if is_compensable(b.handler)]
        targets += [_undo(ids, b) for b in undoable]
        if len(undoable) == len(branches):
            return targets
    return [*targets, "compensated"]


def _undo(ids: dict[str, str], branch: Step[Any]) -> str:
    return f"undo_{ids[branch.name]}"


def _quoted(text: str) -> str:
    return text.replace('"', "'")
