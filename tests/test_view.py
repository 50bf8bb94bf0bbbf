"""The live view's board and rendering, fed with status payloads as components publish them."""

from __future__ import annotations

import json

from tickbus._view import StatusBoard, render


def status(board: StatusBoard, topic: str, **fields: object) -> None:
    board.on_status(topic, json.dumps(fields).encode())


def test_render_shows_rate_orders_fills_equity_and_problems() -> None:
    board = StatusBoard()
    status(board, "status/execution/paper", state="online", fills=6)
    status(board, "status/feed/synthetic", state="online", published=100)
    board.quotes_per_second(now=10.0)
    status(board, "status/feed/synthetic", state="online", published=300)
    status(
        board,
        "status/bridge/random",
        state="online",
        forwarded=250,
        orders=7,
        fills=6,
        orders_rejected=2,
        killed="runaway",
        rpc="tcp://127.0.0.1:4242",
        algo={
            "portfolio": {
                "equity": 100123.456,
                "cash": 5000.0,
                "realised_pnl": -12.5,
                "unrealised_pnl": 135.956,
                "positions": {"GOOG": {"qty": 40, "avg_cost": 2500.0, "last_price": 2503.4}},
            }
        },
    )
    status(board, "status/bridge/sma", state="degraded", reason="algorithm lost", forwarded=3)
    board.on_status("status/bridge/garbage", b"not json")
    lines = render(board, now=12.0, broker_url="mqtt://127.0.0.1:1883")
    text = "\n".join(lines)
    assert "quotes/s     100.0" in text
    assert "feeds: synthetic online" in text
    random_row = next(line for line in lines if line.startswith("random"))
    assert random_row.split() == [
        "random",
        "online",
        "250",
        "7",
        "6",
        "100,123.46",
        "5,000.00",
        "-12.50",
        "135.96",
        "tcp://127.0.0.1:4242",
    ]
    assert lines[lines.index(random_row) + 1].split() == [
        "positions:",
        "GOOG",
        "40",
        "@",
        "2,500.00",
    ]
    assert "execution: paper online" in text
    assert "! kill switch on: runaway" in text
    assert "2 orders refused by risk checks" in text
    assert "! algorithm lost" in text
    assert "garbage" not in text


def test_render_before_anything_reported() -> None:
    lines = render(StatusBoard(), now=1.0, broker_url="mqtt://h:1")
    assert "(no bridge has reported yet)" in lines
    assert "feeds: none yet" in lines[1]
    assert "execution: none (orders are not filled)" in lines[1]
