"""``--env-file``: settings for the app from a file of ``KEY=VALUE`` lines (the ``.env``
convention), read before the app is loaded so its factory sees them in ``os.environ``.

Variables already set in the process's environment win (as with python-dotenv, Docker and
uvicorn), so a deployment can override one line of the file. No interpolation of ``${VAR}``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["EnvFileError", "apply_env_file", "read_env_file"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class EnvFileError(ValueError):
    """A line of an env file that is not ``KEY=VALUE`` (the CLI prints it and exits 2)."""


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables of an env file: ``KEY=VALUE`` lines, ``export`` allowed, ``#`` comments,
    values in single quotes (as written) or double quotes (``\\n``, ``\\"``, ``\\\\``)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"env file `{file}` does not exist"
        raise EnvFileError(msg) from None
    except (OSError, UnicodeDecodeError) as error:
        msg = f"env file `{file}` cannot be read: {error}"
        raise EnvFileError(msg) from None
    variables: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line.removeprefix("export ").lstrip()
        key, equals, value = line.partition("=")
        key = key.strip()
        if not equals or not _KEY.fullmatch(key):
            msg = f"{file}:{number}: expected `KEY=VALUE`, got `{raw.strip()}`"
            raise EnvFileError(msg)
        try:
            variables[key] = _value(value.strip())
        except ValueError as error:
            msg = f"{file}:{number}: {error}"
            raise EnvFileError(msg) from None
    return variables


def _value(text: str) -> str:
    if not text or text[0] not in "'\"":
        return re.split(r"\s+#", text, maxsplit=1)[0].rstrip()  # `a b # note` -> `a b`
    quote = text[0]
    end = _closing(text, quote)
    if end is None:
        msg = f"the value {text} has no closing {quote}"
        raise ValueError(msg)
    rest = text[end + 1 :].strip()
    if rest and not rest.startswith("#"):
        msg = f"unexpected `{rest}` after the quoted value"
        raise ValueError(msg)
    inner = text[1:end]
    if quote == "'":
        return inner
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), inner)


def _closing(text: str, quote: str) -> int | None:
    index = 1
    while index < len(text):
        if quote == '"' and text[index] == "\\":
            index += 2
            continue
        if text[index] == quote:
            return index
        index += 1
    return None


def apply_env_file(
    path: str | os.PathLike[str], environ: os._Environ[str] | dict[str, str] | None = None
) -> Mapping[str, str]:
    """Set the file's variables in ``environ`` (``os.environ``) where not already set; return
    the ones it set."""
    target = os.environ if environ is None else environ
    applied = {k: v for k, v in read_env_file(path).items() if k not in target}
    target.update(applied)
    return applied
