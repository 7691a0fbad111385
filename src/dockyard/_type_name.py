"""Readable names of types and type hints, for error messages and logs."""

from __future__ import annotations

__all__ = ["type_name"]


def _readable(qualname: str) -> str:
    # `make_app.<locals>.Billing` reads as `Billing`: the enclosing function is noise.
    return qualname.rsplit("<locals>.", 1)[-1]


def type_name(tp: object) -> str:
    """A short, readable name for a type or type hint (``Repository[Order]``, ``Sequence[int]``)."""
    if isinstance(tp, type) and not getattr(tp, "__args__", None):
        return _readable(tp.__qualname__)
    if callable(tp) and hasattr(tp, "__qualname__") and not hasattr(tp, "__origin__"):
        return _readable(str(tp.__qualname__))  # a factory function
    text = repr(tp)
    for prefix in ("typing.", "collections.abc."):
        text = text.replace(prefix, "")
    origin = getattr(tp, "__origin__", None)
    args = getattr(tp, "__args__", None)
    if origin is not None and args:
        return f"{type_name(origin)}[{', '.join(type_name(a) for a in args)}]"
    return text
