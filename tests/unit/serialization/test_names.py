from dataclasses import dataclass

import pytest

from dockyard.serialization import event_type, schema_version_of, type_name_of


@event_type("order.placed", schema_version=3)
@dataclass(frozen=True, slots=True)
class Declared:
    order_id: str


@dataclass(frozen=True)
class Plain:
    order_id: str


class Inheriting(Declared):
    pass


class ByAttribute:
    __event_type__ = "by-attribute"
    __schema_version__ = 2


def test_declared_name_and_version_are_read_back() -> None:
    assert type_name_of(Declared) == "order.placed"
    assert schema_version_of(Declared) == 3


def test_undeclared_class_uses_its_class_name_not_its_import_path() -> None:
    assert type_name_of(Plain) == "Plain"
    assert schema_version_of(Plain) == 1


def test_declarations_are_not_inherited() -> None:
    assert type_name_of(Inheriting) == "Inheriting"
    assert schema_version_of(Inheriting) == 1


def test_class_attributes_declare_like_the_decorator() -> None:
    assert type_name_of(ByAttribute) == "by-attribute"
    assert schema_version_of(ByAttribute) == 2


@pytest.mark.parametrize(("name", "version"), [("", 1), ("  ", 1), ("ok", 0)])
def test_bad_declarations_are_refused(name: str, version: int) -> None:
    with pytest.raises(ValueError, match=r"empty|schema_version"):
        event_type(name, schema_version=version)
