"""The ``dockyard`` command: loading the app, running its worker, the missing extra."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard.cli import main
from dockyard.cli._commands import cli
from dockyard.cli._load import load_app
from dockyard.exceptions import AppImportError

APP_MODULE = """
import asyncio
from pathlib import Path

from dockyard.app import App
from dockyard.modules import ProvidesBackgroundServices, module


class Once:
    name = "once"

    async def run(self, stop: asyncio.Event) -> None:
        Path(__file__).with_suffix(".ran").write_text("ran")


class Services(ProvidesBackgroundServices):
    def background_services(self, app):
        return [Once()]


@module(extensions=[Services()])
class Root: ...


app = App.build(Root)


def make_app() -> App:
    return App.build(Root)


not_an_app = 42
"""


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "worker_app.py"
    path.write_text(textwrap.dedent(APP_MODULE))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "worker_app", raising=False)
    return path


def test_the_worker_command_runs_the_apps_background_services(app_module: Path) -> None:
    result = CliRunner().invoke(cli, ["worker", "worker_app:app"])
    assert result.exit_code == 0, result.output
    assert "dockyard worker: running once" in result.output
    assert app_module.with_suffix(".ran").read_text() == "ran"


def test_a_factory_function_is_called(app_module: Path) -> None:
    assert load_app("worker_app:make_app").background_services()[0].name == "once"


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("worker_app", "expected `module:attribute`"),
        (
            "no_such_module:app",
            "importing `no_such_module` failed: No module named 'no_such_module'",
        ),
        ("worker_app:missing", "`worker_app` has no `missing`"),
        ("worker_app:not_an_app", "`not_an_app` is a int, not an App"),
    ],
)
def test_bad_targets_say_what_to_pass(app_module: Path, target: str, problem: str) -> None:
    with pytest.raises(AppImportError) as caught:
        load_app(target)
    assert str(caught.value).startswith(f"Cannot load the app `{target}`: {problem}. Hint: pass")
    result = CliRunner().invoke(cli, ["worker", target])
    assert result.exit_code == 2
    assert "Cannot load the app" in result.output


def test_without_typer_the_command_prints_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "typer", None)
    with pytest.raises(SystemExit) as caught:
        main(["worker", "x:y"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: The `dockyard` command needs Typer, which is not installed. "
        "Hint: pip install 'dockyard[cli]'"
    )


STUBBORN_APP = """
import asyncio
from pathlib import Path

from dockyard.app import App
from dockyard.modules import ProvidesBackgroundServices, module


class Stubborn:
    name = "stubborn"

    async def run(self, stop: asyncio.Event) -> None:
        Path(__file__).with_suffix(".started").write_text("started")
        while True:  # swallows every cancellation: a bug the worker must not wait on forever
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                pass


class Services(ProvidesBackgroundServices):
    def background_services(self, app):
        return [Stubborn()]


@module(extensions=[Services()])
class Root: ...


app = App.build(Root)
"""


def test_a_service_that_ignores_cancellation_does_not_keep_the_process_alive(
    tmp_path: Path,
) -> None:
    (tmp_path / "stubborn_app.py").write_text(textwrap.dedent(STUBBORN_APP))
    command = "import sys; from dockyard.cli import main; main(sys.argv[1:])"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen(
        [sys.executable, "-c", command, "worker", "stubborn_app:app", "--grace", "0.2"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "stubborn_app.started").exists():
            assert worker.poll() is None, "the worker exited before its service started"
            assert time.monotonic() < deadline, "the service never started"
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        # Without a bound, the process waits on the task forever and this times out.
        _, errors = worker.communicate(timeout=60)
    finally:
        worker.kill()
    assert "stubborn did not stop when cancelled; leaving it behind" in errors, errors
    assert worker.returncode == 0, errors
