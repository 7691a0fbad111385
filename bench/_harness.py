"""A tiny side-by-side benchmark harness: medians of repeated timed loops, printed as ratios.

Every scenario runs all its contenders in one process run, interleaved round by round, in a
new order each round, so machine noise hits them alike. Targets are printed next to the
ratios; nothing asserts on time.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = [
    "Contender",
    "Result",
    "Scenario",
    "print_means",
    "print_table",
    "run_async",
    "run_sync",
]


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
    # A new order every round (seeded: the same run to run). Where a contender runs matters
    # here: the first of a round runs ~8 % slower, and on PostgreSQL the one that follows a
    # contender on another connection ran 5-12 % slower than the same code elsewhere in the
    # round (measured, docs/event-store.md "Measuring an append"). Rotating kept every
    # contender behind the same neighbour, and charged that to whoever sat there.
    order = random.Random(len(contenders) * 1_000_003 + n)
    for _ in range(rounds):
        for c in order.sample(contenders, len(contenders)):
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


def print_means(results: list[Result], baseline: str) -> None:
    """One line: each contender's mean time × the baseline's, tails (slow samples) included.

    Beside a table of medians of single operations (``n=1``), whose median leaves the slow
    ones out: the two together say whether the tails change the picture.
    """
    base = next(r for r in results if r.name == baseline)
    mean = statistics.fmean(base.samples)
    ratios = ", ".join(
        f"{r.name} {statistics.fmean(r.samples) / mean:.2f}×" for r in results if r is not base
    )
    print(f"means (tails included), × {baseline}'s {_fmt(mean * 1e6)}: {ratios}")
