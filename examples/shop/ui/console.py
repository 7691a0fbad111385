"""How the demo talks: numbered steps and indented details."""

from __future__ import annotations


def step(title: str) -> None:
    print(f"\n== {title}")


def say(line: str) -> None:
    print(f"   {line}")
