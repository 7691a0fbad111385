"""Run one "before" block of docs/migrating.md in the peers' environment (``.venv-peers``).

``python -I run_block.py <where> <line> <distribution> <version>`` reads the block from stdin,
checks that ``<distribution>`` is installed at a version starting with ``<version>`` (the one
the block's title names), runs the block as a module of its own and awaits its ``main()``.
The code is compiled as ``<where>`` with its page line numbers, so a traceback points at the
page. This file runs under the peers' interpreter: it imports nothing from dockyard or pytest.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import types
from importlib import metadata


def run(where: str, line: int, distribution: str, version: str, code: str) -> None:
    installed = metadata.version(distribution)
    if installed != version and not installed.startswith(f"{version}."):
        sys.exit(f"{where}: the block names {distribution} {version}, {installed} is installed")
    module = types.ModuleType("migrating_before_block")
    module.__file__ = where
    sys.modules[module.__name__] = module  # annotations are resolved through the module
    # dont_inherit: this file's `from __future__ import annotations` must not reach the block
    exec(compile("\n" * line + code, where, "exec", dont_inherit=True), module.__dict__)
    main = module.__dict__.get("main")
    if not inspect.iscoroutinefunction(main):
        sys.exit(f"{where}: the block defines no `async def main()` to run")
    asyncio.run(main())


if __name__ == "__main__":
    where, line, distribution, version = sys.argv[1:5]
    run(where, int(line), distribution, version, sys.stdin.read())
