"""A tiny side-by-side benchmark harness: medians of repeated timed loops, printed as ratios.

Every scenario runs all its contenders in one process run, interleaved round by round (who
goes first rotates from round to round), so machine noise hits them alike. Targets are
printed next to the ratios; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Contender", "Result", "Scenario", "print_table", "run_async", "run_sync"]


@dataclass(frozen=True, slots=True)
class Contender:
    """One implementation of a scenario; ``run(n)`` performs the operation ``n`` times."""

    name: str
    run: Callable[[int], Awaitable[None]] | Callable[[int], None]
    note: str = ""


@dataclass(slots=True)
class Result:
    name: str
    per_op_us: float
    samples: list[float] = field(default_factory=list)
    note: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    title: str
    baseline: str
    """The contender every ratio is computed against."""
    target: str = ""
    """The goal, in words, e.g. "dockyard ≤ 1.25× dishka"."""


def _median_per_op(samples: list[float], n: int) -> float:
    return statistics.median(samples) / n * 1e6


async def run_async(
    contenders: list[Contender],
    *,
    n: int,
    rounds: int = 7,
    clock: Callable[[], float] = time.perf_counter,
) -> list[Result]:
    """Time each contender ``rounds`` times for ``n`` operations, interleaved; medians in µs.

    ``clock`` is wall time by default; ``time.process_time`` counts only the CPU this process
    ran, which a loaded machine disturbs less (for work that never waits on another process).
    """
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    for c in contenders:  # warm-up: compile, cache, connect
        out = c.run(max(1, n // 10))
        if asyncio.iscoroutine(out):
            await out
    for round_number in range(rounds):
        # rotate who goes first: on this machine the first contender of a round runs ~8 %
        # slower (measured), which a fixed order would always charge to the baseline
        shift = round_number % len(contenders)
        for c in contenders[shift:] + contenders[:shift]:
            start = clock()
            out = c.run(n)
            if asyncio.iscoroutine(out):
                await out
            samples[c.name].append(clock() - start)
    return [
        Result(c.name, _median_per_op(samples[c.name], n), samples[c.name], c.note)
        for c in contenders
    ]


def run_sync(contenders: list[Contender], *, n: int, rounds: int = 7) -> list[Result]:
    """Synchronous twin of :func:`run_async`."""
    return asyncio.run(run_async(contenders, n=n, rounds=rounds))


def _fmt(us: float) -> str:
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.2f} µs"


def print_table(scenario: Scenario, results: list[Result]) -> None:
    """Print medians and ratios against the scenario's baseline."""
    base = next((r for r in results if r.name == scenario.baseline), None)
    print(f"\n## {scenario.title}")
    if scenario.target:
        print(f"target: {scenario.target}")
    width = max(len(r.name) for r in results)
    print(f"{'contender'.ljust(width)}  {'median/op':>12}  {'× ' + scenario.baseline:>14}  note")
    for r in results:
        ratio = f"{r.per_op_us / base.per_op_us:.2f}×" if base else "-"
        print(f"{r.name.ljust(width)}  {_fmt(r.per_op_us):>12}  {ratio:>14}  {r.note}")
