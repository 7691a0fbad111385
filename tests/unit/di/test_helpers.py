"""The provider helpers build the right specifications and reject nonsense early."""

from collections.abc import AsyncIterator

import pytest

from dockyard.di import (
    Lifetime,
    ProviderKind,
    contextual,
    many,
    object_,
    scoped,
    singleton,
    transient,
)


class Port:
    pass


class Adapter(Port):
    pass


async def make_port() -> AsyncIterator[Port]:
    yield Adapter()


def test_class_provides_itself() -> None:
    spec = scoped(Adapter)
    assert (spec.kind, spec.provides, spec.source, spec.lifetime) == (
        ProviderKind.FACTORY,
        Adapter,
        Adapter,
        Lifetime.SCOPED,
    )


def test_interface_and_implementation() -> None:
    spec = singleton(Port, Adapter)
    assert (spec.provides, spec.source, spec.lifetime) == (Port, Adapter, Lifetime.SINGLETON)


def test_factory_function_reads_its_return_type_later() -> None:
    spec = transient(make_port)
    assert spec.provides is None
    assert spec.source is make_port
    assert spec.lifetime is Lifetime.TRANSIENT


def test_object_defaults_to_its_class() -> None:
    adapter = Adapter()
    assert object_(adapter).provides is Adapter
    assert object_(adapter, provides=Port).provides is Port


def test_when_flag_and_callable() -> None:
    assert not scoped(Adapter, when=False).is_active()
    assert scoped(Adapter, when=lambda: True).is_active()


def test_rejections() -> None:
    with pytest.raises(TypeError, match="expected a class or a factory function"):
        scoped(42)
    with pytest.raises(TypeError, match="must be a class or a factory function"):
        scoped(Port, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="needs at least one implementation"):
        many(Port)
    with pytest.raises(TypeError, match="either app-wide"):
        contextual(Port, lifetime=Lifetime.TRANSIENT)


def test_lifetime_ranks() -> None:
    assert Lifetime.SINGLETON.rank < Lifetime.SCOPED.rank == Lifetime.TRANSIENT.rank
