"""The ``dockyard`` command. Needs Typer: ``pip install 'dockyard[cli]'``.

``dockyard worker package.module:app`` runs the app's background services (outbox relay,
projections, consumers, the saga runner) until SIGTERM or SIGINT.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dockyard.exceptions import MissingExtraError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``dockyard`` console script."""
    try:
        import typer  # noqa: F401 - only checking that the extra is installed
    except ImportError:
        error = MissingExtraError("The `dockyard` command", "Typer", "cli")
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    from dockyard.cli._commands import cli

    cli(args=list(argv) if argv is not None else None, prog_name="dockyard")
