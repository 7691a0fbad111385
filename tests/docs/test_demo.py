"""The shop demo that `make demo` runs does what it says, step by step."""

import pytest
from examples.shop.demo import run


async def test_demo_runs_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    await run()
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("== ")]
    assert [s.split(".")[0] for s in steps] == [f"== {i}" for i in range(1, 7)]
    assert "module InfraModule started" in out
    assert out.index("module InventoryModule started") < out.index("module OrdersModule started")
    assert out.index("module OrdersModule stopped") < out.index("module InfraModule stopped")
    assert "status paid" in out
    assert "refused: only 2 of teapot left, 3 wanted" in out
    assert "Module `ReportingModule` needs `StockLevels` (for `StockReport`)" in out
