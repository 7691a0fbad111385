"""Load an ``App`` from ``package.module:attribute``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from dockyard.app import App
from dockyard.exceptions import AppImportError, DockyardError

__all__ = ["load_app"]


def load_app(target: str) -> App:
    """The ``App`` named by ``target`` (an attribute, or a function returning one).

    The current directory is importable, as with ``python -m``.

    Raises:
        AppImportError: ``target`` is malformed, does not import, or names no ``App``.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise AppImportError(target, "expected `module:attribute`")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppImportError(target, f"importing `{module_name}` failed: {exc}") from exc
    except Exception as exc:
        problem = f"importing `{module_name}` failed: {_one_line(exc)}"
        raise AppImportError(target, problem) from exc
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError as exc:
            raise AppImportError(target, f"`{module_name}` has no `{attribute}`") from exc
    if not isinstance(found, App) and callable(found):
        try:
            found = found()
        except Exception as exc:
            problem = f"`{attribute}()` failed: {_one_line(exc)}"
            raise AppImportError(target, problem) from exc
    if not isinstance(found, App):
        raise AppImportError(target, f"`{attribute}` is a {type(found).__name__}, not an App")
    return found


def _one_line(error: Exception) -> str:
    """``Type: message`` for errors of the user's code; dockyard's own errors read alone."""
    text = str(error)
    if isinstance(error, DockyardError):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
