"""Replacing providers in tests without editing modules."""

import pytest

from dockyard import App, module, object_, scoped, singleton
from dockyard.exceptions import ModuleConfigurationError, NotExportedError
from dockyard.testing import create_test_app, override


class Mailer:
    def send(self) -> str:
        return "smtp"


class FakeMailer(Mailer):
    def send(self) -> str:
        return "fake"


class Signup:
    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer


@module(providers=[singleton(Mailer)], exports=[Mailer])
class MailModule: ...


@module(providers=[scoped(Signup)], imports=[MailModule], exports=[Signup])
class Accounts: ...


@module(imports=[Accounts])
class Root: ...


async def test_create_test_app_replaces_by_type_keeping_the_boundary() -> None:
    app = create_test_app(Root, overrides=[object_(FakeMailer(), provides=Mailer)])
    async with app, app.scope() as scope:
        assert (await scope.get(Signup)).mailer.send() == "fake"


async def test_override_is_undone_after_the_block() -> None:
    app = App.build(Root)
    async with app:
        async with override(app, singleton(Mailer, FakeMailer)), app.scope() as scope:
            assert (await scope.get(Signup)).mailer.send() == "fake"
        async with app.scope() as scope:
            assert (await scope.get(Signup)).mailer.send() == "smtp"
    assert set(app.graph.get(MailModule).provided) == {Mailer}
    assert app.graph.get(MailModule).provided[Mailer].source is Mailer


async def test_an_override_is_checked_like_any_provider() -> None:
    class Smtp:
        pass

    class NeedsSmtp(Mailer):
        def __init__(self, smtp: Smtp) -> None:
            self.smtp = smtp

    app = App.build(Root)
    with pytest.raises(ModuleConfigurationError, match=r"needs `.*Smtp` \(for `Mailer`\)"):
        async with override(app, singleton(Mailer, NeedsSmtp)):
            pass


def test_override_does_not_widen_visibility() -> None:
    class Internal:
        pass

    class UsesInternal:
        def __init__(self, internal: Internal) -> None:
            self.internal = internal

    @module(providers=[scoped(Internal)])
    class Hidden: ...

    @module(providers=[scoped(UsesInternal)], imports=[Hidden])
    class Consumer: ...

    with pytest.raises(ModuleConfigurationError) as info:
        create_test_app(Consumer, overrides=[scoped(Internal)])
    assert isinstance(info.value.problems[0], NotExportedError)
