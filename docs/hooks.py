"""MkDocs hooks for the documentation site (``hooks:`` in mkdocs.yml; not a page).

A page the nav lists while another branch is still writing it is built as a short placeholder,
so ``mkdocs build --strict`` passes before that branch is merged; the real file, once present,
replaces it (nothing here is written to ``docs/``).
"""

from __future__ import annotations

from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PENDING = {
    "aggregates.md": (
        "# Aggregates\n\n"
        "This page is being written: `Aggregate`, `@applies`, `AggregateRepository`, "
        "`Decider`, `AggregateSpec` and `retry_on_conflict`. Until then, see the "
        "[API reference](reference/eventsourcing.md).\n"
    ),
}


def on_files(files: Files, /, *, config: MkDocsConfig, **_: Any) -> Files:
    """Add a placeholder for each pending page that is not in ``docs/`` yet."""
    for src_uri, content in PENDING.items():
        if files.get_file_from_path(src_uri) is None:
            files.append(File.generated(config, src_uri, content=content))
    return files
