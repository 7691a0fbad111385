"""The shop demo that `make demo` runs does what it says, step by step."""

import itertools

import pytest
from examples.shop.demo import run
from examples.shop.shared_kernel import ids


async def test_demo_runs_every_step(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Order ids come from a process-wide counter (as `make demo` starts it: fresh); tests that
    # ran the shop before in this process (the web ones) have moved it on.
    monkeypatch.setattr(ids, "_order_numbers", itertools.count(1))
    await run()
    out = capsys.readouterr().out
    steps = [line for line in out.splitlines() if line.startswith("== ")]
    assert [s.split(".")[0] for s in steps] == [f"== {i}" for i in range(1, 12)]
    # Two apps joined by events only: each routes one event to the other through its outbox.
    assert (
        "event   OrderPlaced         -> Route[OrderPlaced → payments] (OutboxModule), ReserveStock"
        in out
    )
    assert "event   OrderPlaced         -> ChargeCustomer (PaymentsModule)" in out
    assert "event   PaymentCaptured     -> Route[PaymentCaptured → orders] (OutboxModule)" in out
    started = out.index("shop: module InventoryModule started")
    assert started < out.index("shop: module OrdersModule started")
    assert out.index("shop: module OrdersModule stopped") < out.index(
        "shop: module InventoryModule stopped"
    )
    assert "payments: module InfraModule started" in out  # each app says its own lines
    # Where things are: the transport and the database file.
    assert "transport: in memory, in this process" in out
    assert "shop database: SQLite file " in out
    # Placing the order: stock inline, payment only after the relay runs.
    assert "order-0001: placed, 50.99 EUR\n   outbox: 1 message waiting for the relay" in out
    charged = out.index("payments: charged 50.99 EUR")
    assert out.index("shop worker: outbox-relay, consumer:orders:shop, order-summaries") < charged
    assert charged < out.index("orders: order-0001 marked paid (pay-0001)")
    assert "order-0001: paid (pay-0001)\n   outbox: 0 messages waiting" in out
    # Event-sourced on SQLite: two events in the order's stream.
    assert "#1 Order-order-0001 v1 shop.order-placed" in out
    assert "#2 Order-order-0001 v2 shop.order-paid" in out
    assert "reloaded from its stream: version 2, paid" in out
    # Read models: the inline count at once, the catch-up summaries once caught up.
    assert "orders of c-ada (inline): 2" in out
    assert "summary (catch-up): order-0001 c-ada 50.99 EUR paid" in out
    assert "summary (catch-up): order-0002 c-ada 22.50 EUR paid" in out
    # A refused order leaves nothing behind: no events, no outbox row, no count.
    assert "refused by inventory: only 1 of teapot left, 3 wanted" in out
    assert "the transaction rolled back: still 4 events in the store," in out
    assert "and 0 messages in the outbox: payments never heard of it" in out
    assert "orders of c-bob (inline): 0" in out
    assert "Module `ReportingModule` needs `StockLevels` (for `StockReport`)" in out
    # Checkout as a saga: its diagram, a happy path, and a fallback then a compensation.
    assert "s1 --> s1_fallback : gave up or circuit open" in out
    assert "s2_awaiting --> completed : Shipped" in out
    assert "checkout-0001: completed (paid card-checkout-0001, tracking trk-checkout-0001)" in out
    failed = out[out.index("checkout-0002: 2 × teapot") :]
    assert [line.split()[:2] for line in failed.splitlines()[1:9]] == [
        ["reserve-stock", "completed"],
        ["charge-card", "failed"],
        ["charge-card", "failed"],
        ["charge-backup", "completed"],
        ["ship", "sent"],
        ["ship", "failed"],
        ["charge-backup", "compensated"],
        ["reserve-stock", "compensated"],
    ]
    assert "no courier delivers to Atlantis" in failed
    assert (
        "reserved 2 × teapot, 0 left; refunded backup-checkout-0002; released 2 × teapot, 2 left"
        in failed
    )
    assert "checkout-0002: compensated (paid -, tracking -)" in failed
    assert "refunded ['shop.checkout:checkout-0002:charge-backup']" in failed
    assert "circuit breaker card-gateway: open" in failed
    assert "step1 --> step2 : gave up after 2 attempts" in failed
    assert "undo5 --> compensated : done" in failed
    assert out.rstrip().endswith(
        "python -m examples.shop_distributed rabbit   (RabbitMQ on localhost:5672; or nats)"
    )


async def test_step_6_comes_out_in_one_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers' handlers print while the demo does: their lines are held and printed at
    # fixed points, so two runs print the same lines in the same order.
    outputs = []
    for _ in range(2):
        monkeypatch.setattr(ids, "_order_numbers", itertools.count(1))
        await run()
        out = capsys.readouterr().out
        outputs.append(out[out.index("== 6.") : out.index("== 7.")].splitlines())
    assert outputs[0] == outputs[1]
    assert outputs[0][1:] == [
        "   -> PlaceOrder",
        "      inventory: reserved 1 × teapot, 1 left",
        "   orders of c-ada (inline): 2",
        "      payments: charged 22.50 EUR",
        "      orders: order-0002 marked paid (pay-0002)",
        "   summary (catch-up): order-0001 c-ada 50.99 EUR paid",
        "   summary (catch-up): order-0002 c-ada 22.50 EUR paid",
        "",
    ]
