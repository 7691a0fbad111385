"""How the demo talks: numbered steps and indented details."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_held: list[str] | None = None


def step(title: str) -> None:
    print(f"\n== {title}")


def say(line: str) -> None:
    print(f"   {line}")


def say_meanwhile(line: str) -> None:
    """A line from work running beside the caller (a worker's handler): printed at once, or,
    inside ``holding_background_lines()``, kept until ``print_held()`` so the output comes in
    one order whatever the scheduling."""
    if _held is None:
        say(line)
    else:
        _held.append(line)


def print_held() -> None:
    """Print the lines held so far (in the order they were said)."""
    if _held is not None:
        for line in _held:
            say(line)
        _held.clear()


@contextmanager
def holding_background_lines() -> Iterator[None]:
    global _held  # noqa: PLW0603 - the demo's one narrator
    _held = []
    try:
        yield
    finally:
        print_held()
        _held = None
