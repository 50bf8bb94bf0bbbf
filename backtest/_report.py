"""``equity.png`` and ``report.html``: a backtest to look at, not only to read.

The plot is drawn with matplotlib's object API on the Agg canvas (no pyplot,
no display, no global state). The report is one HTML file with the plot
embedded as a ``data:`` URI and no script, link or font from anywhere else:
it opens offline, attached to a mail or copied to another machine. Every text
that comes from data or params is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from backtest._metrics import format_summary

REPORT_FILE = "report.html"
SHOWN_FILLS = 50
"""The latest fills listed in the report."""

REPORT_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
.incomplete { background: #b00020; color: white; padding: 0.8em; font-weight: bold; }
img { max-width: 100%; }
"""
"""The CSS of every tickbus report (a backtest's, a sweep's)."""


def write_report(
    directory: Path,
    *,
    title: str,
    metrics: Mapping[str, Any],
    params: Mapping[str, Any],
    plot: bytes,
    fills: pa.Table,
    incomplete: str | None,
) -> Path:
    """Write ``report.html`` into `directory` (see the module docstring); returns its path.

    Args:
        directory: Where the report goes.
        title: Its heading.
        metrics: The tearsheet (`backtest._metrics.tearsheet`).
        params: The algorithm's params.
        plot: The equity plot (`plot_png`), embedded.
        fills: The fills; the last `SHOWN_FILLS` are listed.
        incomplete: Why the run stopped early (shown in a red banner), or None.
    """
    image = base64.b64encode(plot).decode("ascii")
    rows = format_summary(metrics).splitlines()
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{REPORT_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if incomplete is not None:
        parts.append(f'<p class="incomplete">Incomplete run: {html.escape(incomplete)}</p>')
    parts.append(f'<img alt="equity and drawdown" src="data:image/png;base64,{image}">')
    parts.append("<h2>Metrics</h2>")
    parts.append(_table(["metric", "value"], [row.split("  ", 1) for row in rows]))
    parts.append("<h2>Params</h2>")
    parts.append(_table(["param", "value"], [[k, repr(v)] for k, v in sorted(params.items())]))
    parts.append(f"<h2>Last {min(SHOWN_FILLS, fills.num_rows)} of {fills.num_rows} fills</h2>")
    parts.append(_fills_table(fills))
    parts.append("</body></html>")
    path = directory / REPORT_FILE
    path.write_text("\n".join(parts) + "\n")
    return path


def plot_png(equity: pa.Table) -> bytes:
    """The equity curve and, below it, the drawdown in percent, as a PNG."""
    figure = Figure(figsize=(10, 6), dpi=100)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    times = equity.column("ts").to_numpy()
    values = equity.column("equity").to_numpy()
    if len(values):
        peaks = np.maximum.accumulate(values)
        top.plot(times, values, color="#1f77b4", linewidth=1)
        bottom.fill_between(times, (values / peaks - 1) * 100, 0, color="#d62728", step="post")
    top.set_ylabel("equity")
    top.grid(alpha=0.3)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    return png_bytes(figure)


def png_bytes(figure: Figure) -> bytes:
    """`figure`, laid out tight, as PNG bytes with no timestamp: the same figure, the same bytes."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell).strip())}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fills_table(fills: pa.Table) -> str:
    columns = ["ts", "sid", "side", "qty", "price", "fee", "realised_pnl"]
    last = fills.slice(max(0, fills.num_rows - SHOWN_FILLS)).select(columns).to_pylist()
    rows = [
        [
            row["ts"].isoformat(),
            row["sid"],
            row["side"],
            f"{row['qty']:,}",
            f"{row['price']:,.4f}",
            f"{row['fee']:,.4f}",
            f"{row['realised_pnl']:,.2f}",
        ]
        for row in last
    ]
    return _table(columns, rows)
