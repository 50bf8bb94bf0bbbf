"""The risk gate, the order screen and the control commands as plain Python, with reasons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge._control import KillCommand, LiftCommand, SwapCommand, parse_control
from risk import OrderScreen, Refusal, RiskGate, RiskLimits
from tickbus.errors import ConfigError


def order(side: str = "buy", qty: int = 10, sid: str = "GOOG", **extra: Any) -> dict[str, Any]:
    return {"sid": sid, "side": side, "qty": qty, "type": "market", **extra}


def test_no_limits_lets_everything_through_and_tracks_positions() -> None:
    gate = RiskGate(RiskLimits())
    assert gate.check(order(qty=5), None) is None
    assert gate.check(order("sell", qty=8), None) is None
    assert gate.position("GOOG") == -3


def test_order_qty_limit() -> None:
    gate = RiskGate(RiskLimits(max_order_qty=10))
    assert gate.check(order(qty=10), 1.0) is None
    assert gate.check(order(qty=11), 1.0) == "qty 11 is above max_order_qty 10"
    assert gate.position("GOOG") == 10, "a refused order does not count"


def test_notional_limit_uses_the_limit_price_else_the_last_quote() -> None:
    gate = RiskGate(RiskLimits(max_order_notional=1_000))
    assert gate.check(order(qty=10), 100.0) is None
    assert gate.check(order(qty=10), 100.5) == ("notional 1005.00 is above max_order_notional 1000")
    assert gate.check(order(qty=10, type="limit", limit_price=99.0), 500.0) is None
    assert gate.check(order(qty=10), None) == "no price known for GOOG to check max_order_notional"


def test_position_limit_counts_buys_and_sells_per_symbol() -> None:
    gate = RiskGate(RiskLimits(max_position=20))
    assert gate.check(order(qty=15), 1.0) is None
    assert gate.check(order(qty=6), 1.0) == "position in GOOG would be 21, beyond max_position 20"
    assert gate.check(order(qty=6, sid="AAPL"), 1.0) is None
    assert gate.check(order("sell", qty=35), 1.0) is None  # 15 - 35 = -20
    assert gate.check(order("sell", qty=1), 1.0) == (
        "position in GOOG would be -21, beyond max_position 20"
    )


def test_rate_limit_is_a_sliding_second() -> None:
    now = [0.0]
    gate = RiskGate(RiskLimits(max_orders_per_s=2), clock=lambda: now[0])
    assert gate.check(order(), 1.0) is None
    now[0] = 0.5
    assert gate.check(order(), 1.0) is None
    assert gate.check(order(), 1.0) == "more than max_orders_per_s 2 orders in 1 s"
    now[0] = 1.01  # the first order left the window
    assert gate.check(order(), 1.0) is None


def test_kill_switch_refuses_everything_until_lifted() -> None:
    gate = RiskGate(RiskLimits())
    gate.kill("operator")
    assert gate.check(order(), 1.0) == "kill switch on: operator"
    gate.lift()
    assert gate.check(order(), 1.0) is None


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"max_order_qty": 0}, "risk limit max_order_qty must be a finite number > 0, got 0"),
        ({"max_position": -1}, "risk limit max_position must be a finite number > 0, got -1"),
        ({"max_orders_per_s": True}, "risk limit max_orders_per_s must be a number, got True"),
        ({"max_order_notional": "1"}, "risk limit max_order_notional must be a number, got '1'"),
        (
            {"max_order_notional": float("inf")},
            "risk limit max_order_notional must be a finite number > 0, got inf",
        ),
    ],
)
def test_bad_limits_are_refused_with_their_reason(values: dict[str, Any], reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        RiskLimits(**values)
    assert info.value.reason == reason


def test_limits_from_a_file_with_flags_over_them(tmp_path: Path) -> None:
    path = tmp_path / "risk.json"
    path.write_text(json.dumps({"max_order_qty": 100, "max_position": 500}))
    limits = RiskLimits.from_file(path).merged({"max_order_qty": 50, "max_position": None})
    assert limits == RiskLimits(max_order_qty=50, max_position=500)
    path.write_text(json.dumps({"max_qty": 1}))
    with pytest.raises(ConfigError, match=r"unknown risk limits in .*risk.json: \['max_qty'\]"):
        RiskLimits.from_file(path)
    path.write_text("[1]")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        RiskLimits.from_file(path)


def test_forget_takes_a_rejected_order_off_the_position() -> None:
    gate = RiskGate(RiskLimits(max_position=10))
    assert gate.check(order(qty=10), 100.0) is None
    assert gate.check(order(qty=1), 100.0) is not None
    gate.forget(order(qty=10))
    assert gate.position("GOOG") == 0
    assert gate.check(order(qty=10), 100.0) is None
    gate.forget({"sid": "GOOG", "side": "buy"})  # no qty: never passed the gate, ignored
    assert gate.position("GOOG") == 10


def test_reset_positions_counts_from_what_the_algorithm_holds() -> None:
    gate = RiskGate(RiskLimits(max_position=10))
    gate.reset_positions({"GOOG": 8})
    assert gate.check(order(qty=3), 100.0) == "position in GOOG would be 11, beyond max_position 10"
    assert gate.check(order(qty=2), 100.0) is None


# -- the control commands ------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "command"),
    [
        (b'{"rpc": "tcp://h:1"}', SwapCommand(rpc="tcp://h:1", id="")),
        (
            b'{"rpc": "tcp://h:1", "id": "x", "carry_portfolio": true}',
            SwapCommand(rpc="tcp://h:1", id="x", carry_portfolio=True),
        ),
        (b'{"kill": " runaway "}', KillCommand(reason="runaway")),
        (b'{"lift": true}', LiftCommand()),
    ],
)
def test_control_commands_parse(payload: bytes, command: object) -> None:
    assert parse_control(payload) == command


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"nope", "control command is not JSON"),
        (b"[1]", "must be a JSON object, got list"),
        (b"{}", 'needs exactly one of "rpc" (swap), "kill" or "lift"'),
        (b'{"kill": "x", "lift": true}', 'needs exactly one of "rpc"'),
        (b'{"kill": ""}', '"kill" must be a reason of 1 to 200 characters'),
        (b'{"kill": 3}', '"kill" must be a reason'),
        (b'{"kill": "x", "by": "me"}', "unknown fields: by"),
        (b'{"lift": false}', '"lift" must be true, got False'),
        (b'{"rpc": "nowhere"}', '"rpc": "tcp://host:port"'),
        (b'{"rpc": "tcp://h:1", "carry_portfolio": 1}', '"carry_portfolio" must be true or false'),
    ],
)
def test_bad_control_commands_are_refused_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_control(payload)
    assert reason in caught.value.reason


def test_the_screen_stamps_validates_then_asks_the_gate() -> None:
    screen = OrderScreen("alpha", RiskGate(RiskLimits(max_order_notional=1_000)))
    placed = order(qty=5, id="o1", ts=1.0)
    assert screen.check(placed) == Refusal(
        "no price known for GOOG to check max_order_notional",
        {**placed, "algo": "alpha", "ts": 1.0},
        invalid=False,
    )
    screen.note_prices([{"sid": "GOOG", "price": 100.0, "ts": 1.0}])
    assert screen.check(placed) == {**placed, "algo": "alpha"}, "stamped and let through"
    assert screen.gate.position("GOOG") == 5
    too_big = screen.check(order(qty=11, id="o2", ts=1.0))
    assert isinstance(too_big, Refusal) and not too_big.invalid
    assert too_big.reason == "notional 1100.00 is above max_order_notional 1000"


def test_the_screen_refuses_what_breaks_the_order_schema() -> None:
    screen = OrderScreen("alpha", RiskGate(RiskLimits()))
    bad = screen.check(order(qty=0, id="o1", ts=1.0))
    assert isinstance(bad, Refusal) and bad.invalid and bad.reason.startswith("invalid order: ")
    assert bad.order is not None and bad.order["algo"] == "alpha"
    not_an_object = screen.check(["GOOG", 10])
    assert not_an_object == Refusal(
        "algorithm returned a bad order: not an object but list", None, invalid=True
    )
    assert screen.gate.position("GOOG") == 0, "nothing refused is counted"
