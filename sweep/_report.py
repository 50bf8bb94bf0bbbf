"""A sweep to look at: the best jobs as a table, a heatmap over two params, and ``report.html``.

The heatmap shows one metric over two swept params; where other params or
symbols vary too, each cell is the mean over the finished jobs that share
its two values (the title says so). ``report.html`` embeds the heatmap and
lists every job, best first, each linking to its own backtest's report
(relative links: the directory can be copied or opened offline).
"""

from __future__ import annotations

import base64
import html
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from backtest.summary import REPORT_STYLE, png_bytes
from sweep._jobs import DONE
from sweep._ranking import number, ranked
from sweep._results import JOBS_DIR

HEATMAP_FILE = "heatmap.png"
REPORT_FILE = "report.html"


def format_ranking(table: pa.Table, metric: str, params: Sequence[str], *, top: int) -> str:
    """The `top` best jobs by `metric` as an aligned text table."""
    best = [r for r in ranked(table, metric)[:top] if r["status"] == DONE]
    if not best:
        return f"no finished job has a {metric}"
    columns = ["job", *params, "symbols", *_figures(metric)]
    cells = [[_cell(r.get(c if c in r else f"param.{c}")) for c in columns] for r in best]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def heatmap_png(table: pa.Table, metric: str, x: str, y: str) -> bytes | None:
    """`metric` over params `x` (columns) and `y` (rows) as a PNG; None without finished jobs."""
    cells: dict[tuple[Any, Any], list[float]] = defaultdict(list)
    for row in table.to_pylist():
        value = number(row.get(metric))
        if row["status"] == DONE and value is not None:
            cells[(row[f"param.{x}"], row[f"param.{y}"])].append(value)
    if not cells:
        return None
    xs = sorted({k[0] for k in cells}, key=_order)
    ys = sorted({k[1] for k in cells}, key=_order)
    grid = np.full((len(ys), len(xs)), np.nan)
    for (vx, vy), values in cells.items():
        grid[ys.index(vy), xs.index(vx)] = float(np.mean(values))
    figure = Figure(figsize=(max(5, 0.9 * len(xs) + 2), max(4, 0.6 * len(ys) + 2)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    image = axes.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    figure.colorbar(image, ax=axes, label=metric)
    axes.set_xticks(range(len(xs)), [str(v) for v in xs])
    axes.set_yticks(range(len(ys)), [str(v) for v in ys])
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    pooled = max(len(v) for v in cells.values()) > 1
    axes.set_title(f"{'mean ' if pooled else ''}{metric} by {x} and {y}")
    if len(xs) * len(ys) <= 400:
        middle = float(np.nanmean([np.nanmin(grid), np.nanmax(grid)]))
        for (i, j), value in np.ndenumerate(grid):
            if not math.isnan(value):  # dark text on the bright (high) half of viridis
                color = "black" if value > middle else "white"
                axes.text(j, i, f"{value:.3g}", ha="center", va="center", color=color)
    return png_bytes(figure)


def write_report(
    out: Path, table: pa.Table, *, title: str, metric: str, params: Sequence[str],
    heatmap: bytes | None, note: str | None,
) -> Path:  # fmt: skip
    """Write ``report.html`` into `out` (see the module docstring); returns its path."""
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{REPORT_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if note:
        parts.append(f'<p class="incomplete">{html.escape(note)}</p>')
    if heatmap is not None:
        encoded = base64.b64encode(heatmap).decode("ascii")
        parts.append(
            f'<img alt="{html.escape(metric)} heatmap" src="data:image/png;base64,{encoded}">'
        )
    columns = ["job", "status", *[f"param.{p}" for p in params], "symbols",
               *_figures(metric), "attempts", "error"]  # fmt: skip
    head = "".join(f"<th>{html.escape(c.removeprefix('param.'))}</th>" for c in columns)
    body = []
    for row in ranked(table, metric):
        cells = []
        for column in columns:
            text = html.escape(_cell(row.get(column)))
            if column == "job" and row.get("report"):
                link = html.escape(f"{JOBS_DIR}/{row['report']}", quote=True)
                text = f'<a href="{link}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    parts.append(f"<h2>{table.num_rows} jobs, best {html.escape(metric)} first</h2>")
    parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")
    parts.append("</body></html>")
    path = out / REPORT_FILE
    path.write_text("\n".join(parts) + "\n")
    return path


def _figures(metric: str) -> list[str]:
    """The metrics shown for each job: `metric` first, then the return, drawdown and trades."""
    return [metric, *(m for m in ("total_return", "max_drawdown", "trades") if m != metric)]


def _order(value: Any) -> tuple[int, Any]:
    numeric = number(value)
    return (0, numeric) if numeric is not None else (1, str(value))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
