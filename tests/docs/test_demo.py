"""The shop demo that `make demo` runs does what it says, step by step."""

import pytest
from examples.shop.demo import run


async def test_demo_runs_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    await run()
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("== ")]
    assert [s.split(".")[0] for s in steps] == [f"== {i}" for i in range(1, 9)]
    # The registry: one command fans out to two other components.
    assert "event   OrderPlaced      -> ReserveStock (InventoryModule), ChargeCustomer" in out
    assert out.index("module InventoryModule started") < out.index("module OrdersModule started")
    assert out.index("module OrdersModule stopped") < out.index("module InfraModule stopped")
    placed = out.index("-> PlaceOrder")
    assert placed < out.index("inventory: reserved 1 × kettle") < out.index("payments: charged")
    assert "orders: order-0001 marked paid (pay-0001)" in out
    assert ": paid, 50.99 EUR" in out
    # Event-sourced on SQLite: two events in the order's stream, and a refused order leaves none.
    assert "#1 Order-order-0001 v1 shop.order-placed" in out
    assert "#2 Order-order-0001 v2 shop.order-paid" in out
    assert "reloaded from its stream: version 2, paid" in out
    assert "refused by inventory: only 1 of teapot left, 3 wanted" in out
    # Read models: the inline count is current at once, the catch-up summaries after the worker.
    assert "worker running: order-summaries" in out
    assert "orders of c-ada (inline): 2" in out
    assert "summary (catch-up): order-0001 c-ada 50.99 EUR paid" in out
    assert "summary (catch-up): order-0002 c-ada 22.50 EUR paid" in out
    assert "the transaction rolled back: still 4 events in the store" in out
    assert "orders of c-bob (inline): 0" in out
    assert "Module `ReportingModule` needs `StockLevels` (for `StockReport`)" in out
