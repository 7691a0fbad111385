"""Run every benchmark scenario, or those named: ``python -m bench modules messaging``."""

from __future__ import annotations

import asyncio
import importlib
import sys

SCENARIOS = (
    "modules",
    "messaging",
    "app",
    "eventstore",
    "concurrency",
    "projections",
    "outbox",
    "scheduled",
    "sagas",
    "brokers",
    "transports",
    "web",
    "web_instructions",
    "telemetry",
)


def main(argv: list[str]) -> None:
    names = argv or list(SCENARIOS)
    for name in names:
        if name not in SCENARIOS:
            raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        try:
            scenario = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bench.{name}":
                raise
            print(f"\n## {name}: not written yet")
            continue
        asyncio.run(scenario.main())


if __name__ == "__main__":
    main(sys.argv[1:])
