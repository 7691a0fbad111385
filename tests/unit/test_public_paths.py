"""Public classes and functions show the path users import them from, and still pickle."""

import importlib
import pickle
import pkgutil
import typing
from types import FunctionType

import pytest

import dockyard
from dockyard.messaging import ISender
from dockyard.outbox import route
from dockyard.sql import SqlEventStore

SKIPPED = {"dockyard.exceptions"}  # the error tree has its own layout


def _public_packages() -> list[str]:
    return ["dockyard"] + [
        info.name
        for info in pkgutil.walk_packages(dockyard.__path__, "dockyard.")
        if info.ispkg
        and info.name not in SKIPPED
        and not any(part.startswith("_") for part in info.name.split("."))
    ]


def _exported() -> list[tuple[str, str, type | FunctionType]]:
    found = []
    for package in _public_packages():
        module = importlib.import_module(package)
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type | FunctionType):
                found.append((package, name, value))
    return found


EXPORTED = _exported()


def test_every_public_package_is_covered() -> None:
    packages = {package for package, _, _ in EXPORTED}
    assert {"dockyard.messaging", "dockyard.sql", "dockyard.testing"} <= packages


@pytest.mark.parametrize(
    ("package", "name", "value"), EXPORTED, ids=[f"{p}.{n}" for p, n, _ in EXPORTED]
)
def test_an_export_lives_at_a_public_path_that_pickle_finds(
    package: str, name: str, value: type | FunctionType
) -> None:
    home = value.__module__
    assert not any(part.startswith("_") for part in home.split(".")), f"{package}.{name}: {home}"
    assert getattr(importlib.import_module(home), value.__qualname__) is value
    assert pickle.loads(pickle.dumps(value)) is value
    typing.get_type_hints(value)  # annotations still resolve where the object now says it lives


def test_reprs_show_the_public_path() -> None:
    assert repr(ISender) == "<class 'dockyard.messaging.ISender'>"
    assert repr(SqlEventStore) == "<class 'dockyard.sql.SqlEventStore'>"
    assert f"{route.__module__}.{route.__qualname__}" == "dockyard.outbox.route"
