"""docs/telemetry.md: its samples run (``test_snippets``); its metric table names every
instrument the app makes, and no other."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dockyard.telemetry import Instruments, Telemetry

PAGE = Path(__file__).resolve().parents[2] / "docs" / "telemetry.md"


class Names:
    """A meter (and its provider) that only writes down the instruments made with it."""

    def __init__(self) -> None:
        self.made: dict[str, str] = {}

    def get_meter(self, _name: str, *_args: Any, **_kwargs: Any) -> Names:
        return self

    def _make(self, kind: str) -> Any:
        def make(name: str, *_args: Any, **_kwargs: Any) -> None:
            self.made[name] = kind

        return make

    def __getattr__(self, attribute: str) -> Any:
        kinds = {
            "create_histogram": "histogram",
            "create_counter": "counter",
            "create_observable_gauge": "gauge",
        }
        if attribute in kinds:
            return self._make(kinds[attribute])
        raise AttributeError(attribute)


def documented() -> dict[str, str]:
    section = PAGE.read_text(encoding="utf-8").split("## Metrics", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([\w.]+)` \| (\w+) \|", section, re.MULTILINE))


def test_the_metrics_table_lists_every_instrument() -> None:
    names = Names()
    Instruments(Telemetry(meter_provider=names, traces=False))
    assert documented() == names.made
