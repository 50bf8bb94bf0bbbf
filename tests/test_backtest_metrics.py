"""The tearsheet against values computed by hand on tiny series, and the report's promises."""

from __future__ import annotations

import base64
import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from backtest import EQUITY_SCHEMA, FILLS_SCHEMA
from backtest.summary import METRIC_KEYS, format_summary, plot_png, tearsheet, write_report

PNG = b"\x89PNG\r\n\x1a\n"


def at(day: int, hour: int) -> int:
    return int(datetime(2026, 12, day, hour, tzinfo=UTC).timestamp()) * 1_000_000_000


def equity_table(rows: list[tuple[int, float, float]]) -> pa.Table:
    """(ts ns, equity, exposure) rows; cash is equity minus exposure."""
    return pa.table(
        {
            "ts": [r[0] for r in rows],
            "equity": [r[1] for r in rows],
            "cash": [r[1] - r[2] for r in rows],
            "exposure": [r[2] for r in rows],
        },
        schema=EQUITY_SCHEMA,
    )


def fills_table(rows: list[tuple[str, int, float, float, float, bool]]) -> pa.Table:
    """(side, qty, price, fee, realised_pnl, closes) rows."""
    n = len(rows)
    return pa.table(
        {
            "ts": [at(1, 11)] * n,
            "id": [f"f{i}" for i in range(n)],
            "order_id": [f"o{i}" for i in range(n)],
            "sid": ["X"] * n,
            "side": [r[0] for r in rows],
            "qty": [r[1] for r in rows],
            "price": [r[2] for r in rows],
            "fee": [r[3] for r in rows],
            "realised_pnl": [r[4] for r in rows],
            "closes": [r[5] for r in rows],
        },
        schema=FILLS_SCHEMA,
    )


# Four UTC days; the last equity of each: 1100, 1045, 1045, 1149.5 from 1000 in cash,
# so the daily returns are 0.10, -0.05, 0.00, 0.10.
EQUITY = equity_table(
    [
        (at(1, 10), 1000.0, 0.0),
        (at(1, 12), 1100.0, 50.0),
        (at(2, 10), 990.0, 50.0),
        (at(2, 15), 1045.0, 0.0),
        (at(3, 10), 1045.0, 0.0),
        (at(4, 10), 1149.5, 20.0),
    ]
)
FILLS = fills_table(
    [
        ("buy", 10, 10.0, 0.1, -0.1, False),
        ("sell", 5, 12.0, 0.06, 9.94, True),
        ("sell", 5, 9.0, 0.045, -5.045, True),
        ("buy", 2, 50.0, 0.1, -0.1, False),
    ]
)


def test_the_metrics_equal_the_hand_computed_values() -> None:
    m = tearsheet(EQUITY, FILLS, starting_cash=1000.0)
    # mean 0.0375; deviations 0.0625, -0.0875, -0.0375, 0.0625; sample variance
    # 0.016875 / 3 = 0.005625; standard deviation 0.075.
    assert m["days"] == 4
    assert m["total_return"] == pytest.approx(0.1495)
    assert m["annual_volatility"] == pytest.approx(0.075 * math.sqrt(252))
    assert m["sharpe"] == pytest.approx(0.0375 / 0.075 * math.sqrt(252))
    # downside deviation: sqrt(mean of min(r, 0)^2) = sqrt(0.0025 / 4) = 0.025
    assert m["sortino"] == pytest.approx(0.0375 * 252 / (0.025 * math.sqrt(252)))
    assert m["cagr"] == pytest.approx(1.1495 ** (252 / 4) - 1)
    # the peak 1100 (day 1, 12:00) is regained on day 4 at 10:00, after 990 at the bottom
    assert m["max_drawdown"] == pytest.approx(990 / 1100 - 1)
    assert m["max_drawdown_duration_s"] == 3 * 86_400 - 2 * 3600
    assert m["trades"] == 4 and m["round_trips"] == 2
    assert m["win_rate"] == 0.5
    assert m["avg_win"] == pytest.approx(9.94) and m["avg_loss"] == pytest.approx(-5.045)
    assert m["fees"] == pytest.approx(0.305)
    assert m["turnover"] == pytest.approx(305 / (6329.5 / 6))
    assert m["exposure"] == pytest.approx(3 / 6)
    assert m["start"] == "2026-12-01T10:00:00Z" and m["end"] == "2026-12-04T10:00:00Z"
    assert m["final_equity"] == 1149.5 and m["starting_cash"] == 1000.0
    assert list(m) == list(METRIC_KEYS)


def test_a_drawdown_never_regained_lasts_to_the_last_sample() -> None:
    equity = equity_table(
        [(at(1, 10), 1000.0, 0), (at(1, 11), 1200.0, 0), (at(2, 9), 1100, 0), (at(2, 13), 1150, 0)]
    )
    m = tearsheet(equity, fills_table([]), starting_cash=1000.0)
    assert m["max_drawdown"] == pytest.approx(1100 / 1200 - 1)
    assert m["max_drawdown_duration_s"] == 26 * 3600
    assert m["win_rate"] is None and m["avg_win"] is None and m["trades"] == 0


@pytest.mark.parametrize("rows", [0, 1])
def test_too_little_data_gives_none_not_nan(rows: int) -> None:
    equity = equity_table([(at(1, 10), 1000.0, 0.0)][:rows])
    m = tearsheet(equity, fills_table([]), starting_cash=1000.0)
    for key in ("cagr", "annual_volatility", "sharpe", "sortino"):
        assert m[key] is None, key
    json.dumps(m, allow_nan=False)
    text = format_summary(m)
    assert "n/a" in text and "Sharpe" in text


def test_a_flat_curve_has_no_infinite_ratio() -> None:
    flat = equity_table([(at(d, 10), 1000.0, 0.0) for d in (1, 2, 3)])
    m = tearsheet(flat, fills_table([]), starting_cash=1000.0)
    json.dumps(m, allow_nan=False)
    assert m["max_drawdown"] == 0.0 and m["max_drawdown_duration_s"] == 0


def test_the_summary_table_shows_every_metric_formatted() -> None:
    text = format_summary(tearsheet(EQUITY, FILLS, starting_cash=1000.0))
    assert len(text.splitlines()) == len(METRIC_KEYS)
    assert re.search(r"Total return\s+14\.95 %", text)
    assert re.search(r"Max drawdown duration\s+2d 22:00:00", text)
    assert re.search(r"Final equity\s+1,149\.50", text)


def test_the_report_is_self_contained_escaped_and_flags_an_incomplete_run(
    tmp_path: Path,
) -> None:
    metrics = tearsheet(EQUITY, FILLS, starting_cash=1000.0)
    path = write_report(
        tmp_path,
        title="t <i>",
        metrics=metrics,
        params={"name": "<b>x</b>"},
        plot=plot_png(EQUITY),
        fills=FILLS,
        incomplete="stopped at quote #3",
    )
    page = path.read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "Incomplete run: stopped at quote #3" in page
    image = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert image is not None and base64.b64decode(image.group(1)).startswith(PNG)
    complete = write_report(
        tmp_path, title="t", metrics=metrics, params={}, plot=plot_png(EQUITY), fills=FILLS,
        incomplete=None,
    )  # fmt: skip
    assert "Incomplete" not in complete.read_text()
    assert plot_png(EQUITY).startswith(PNG)
