"""The public API is curated: the root exports exactly the documented names, all sorted."""

import importlib
import pkgutil

import dockyard

ROOT_EXPORTS = [
    "App",
    "Command",
    "CommandHandler",
    "DockyardError",
    "DynamicModule",
    "Event",
    "EventHandler",
    "IMessageBus",
    "IPublisher",
    "ISender",
    "Lifespan",
    "Lifetime",
    "Query",
    "QueryHandler",
    "Request",
    "RequestHandler",
    "StreamHandler",
    "StreamRequest",
    "contextual",
    "many",
    "module",
    "object_",
    "scoped",
    "singleton",
    "transient",
]


def test_root_exports_exactly_the_documented_names() -> None:
    assert dockyard.__all__ == ROOT_EXPORTS
    for name in dockyard.__all__:
        assert getattr(dockyard, name) is not None


def _isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions.
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def _public_modules() -> list[str]:
    return ["dockyard"] + [
        info.name
        for info in pkgutil.walk_packages(dockyard.__path__, "dockyard.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]


def test_every_public_module_declares_a_sorted_all() -> None:
    for name in _public_modules():
        missing_extra: ImportError | None = None
        try:
            module = importlib.import_module(name)
        except ImportError as exc:  # an optional extra that is not installed
            missing_extra = exc
        if missing_extra is not None:
            assert "pip install" in str(missing_extra), f"{name}: {missing_extra}"
            continue
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} has no __all__"
        assert list(exported) == sorted(exported, key=_isort_key), f"{name}.__all__ unsorted"
        for attr in exported:
            assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"
