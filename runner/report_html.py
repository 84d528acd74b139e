"""report.html: one self-contained interactive page per run (issue 12).

Why plotly: it is already a dependency, its figures are plain JSON (built here as dicts, no
per-point Python objects), it pans, zooms and shows values on hover without a server, and its
typed-array encoding (base64 ``bdata``) keeps long series compact. Bokeh would do the same with a
smaller script, but needs a second plotting stack beside matplotlib and plotly.

Self-contained means no network: plotly.js (4.8 MB) travels inside the page gzip-compressed and
base64-encoded (2.0 MB) and is unpacked by the browser's ``DecompressionStream`` (every current
browser). The tables are plain HTML and show even where scripts do not run. Long series are
thinned for display only (the minimum and maximum of each bucket, so no extreme is lost); the
statistics are computed from every bar before this module sees them.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.results.stats import trades_frame
from runner.outputs import STAT_LABELS, buy_hold_dwarfs, format_stat, iso

CURVE_POINTS = 4000  # equity, buy & hold and drawdown points drawn at most
PRICE_POINTS = 2000  # price points per symbol drawn at most
MARKED_TRADES = 1000  # entries/exits marked per symbol at most (evenly spaced beyond that)
MENU_BUTTONS = 8  # up to this many symbols get one button each; more get a dropdown
TABLE_TRADES = 1000  # rows of the trades table (trades.csv has them all)


def write_report(
    path: Path,
    summary: dict[str, Any],
    equity: pd.DataFrame,
    trades: list[Any],
    events: pd.DataFrame,
    extras: dict[str, Any],
) -> int:
    """Write the page to ``path`` (atomically); return its size in bytes."""
    frame = trades_frame(trades)
    figures = {
        "equity-chart": _equity_figure(equity, extras.get("buy_hold"), events, summary),
        "price-chart": _price_figure(extras.get("closes"), frame, summary),
    }
    page = _page(summary, figures, frame, events)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return len(page.encode())


def thin_indices(values: np.ndarray, max_points: int) -> np.ndarray:
    """Return sorted indices keeping the first, last, min and max of each of ``max_points/2`` buckets."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    bucket = np.arange(n) * max(1, max_points // 2) // n
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    order = np.lexsort((values, bucket))  # by bucket, then value: first = min, last = max
    ends = np.r_[starts[1:], n] - 1
    return np.unique(np.r_[0, order[starts], order[ends], n - 1])


def _typed(values: np.ndarray, dtype: str = "f8") -> dict[str, str]:
    """plotly's typed-array form: base64 of the little-endian buffer."""
    array = np.ascontiguousarray(values, dtype="<" + dtype)
    return {"dtype": dtype, "bdata": base64.b64encode(array.tobytes()).decode()}


def _ms(ts_us: np.ndarray) -> dict[str, str]:
    return _typed(np.asarray(ts_us, dtype=np.float64) / 1000.0)


def _equity_figure(
    equity: pd.DataFrame, buy_hold: Any, events: pd.DataFrame, summary: dict[str, Any]
) -> dict[str, Any]:
    ts = equity["ts"].to_numpy(dtype=np.int64)
    values = equity["equity"].to_numpy(dtype=np.float64)
    drawdown = (values / np.maximum.accumulate(values) - 1) * 100
    keep = np.unique(
        np.r_[thin_indices(values, CURVE_POINTS), thin_indices(drawdown, CURVE_POINTS)]
    )
    data: list[dict[str, Any]] = [
        _line(ts[keep], values[keep], "equity", "#1f4e79", "y"),
    ]
    if buy_hold is not None and len(buy_hold) == len(values):
        bh = (summary.get("stats") or {}).get("buy_hold_return_pct")
        label = "buy & hold" + (f" ({bh:+.1f} %)" if bh is not None else "")
        own_axis = buy_hold_dwarfs(values, np.asarray(buy_hold))
        label += " (right axis)" if own_axis else ""
        axis = "y3" if own_axis else "y"
        data.append(_line(ts[keep], np.asarray(buy_hold)[keep], label, "#9a9a9a", axis))
    dd = _line(ts[keep], drawdown[keep], "drawdown %", "#d62728", "y2")
    dd.update({"fill": "tozeroy", "fillcolor": "rgba(214,39,40,0.25)"})
    data.append(dd)
    layout = {
        "title": {"text": "Equity vs buy & hold, and drawdown", "x": 0.01},
        "height": 560,
        "margin": {"l": 70, "r": 70, "t": 80, "b": 40},
        "xaxis": {"type": "date", "anchor": "y2"},
        "yaxis": {"title": {"text": "equity"}, "domain": [0.34, 1.0], "tickformat": ",.0f"},
        "yaxis2": {"title": {"text": "drawdown %"}, "domain": [0.0, 0.26]},
        "yaxis3": {
            "title": {"text": "buy & hold equity"},
            "overlaying": "y",
            "side": "right",
            "tickformat": ",.0f",
            "showgrid": False,
        },
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom"},
        "hovermode": "x unified",
        "shapes": _event_shapes(events),
    }
    return {"data": data, "layout": layout}


def _line(ts: np.ndarray, y: np.ndarray, name: str, colour: str, axis: str) -> dict[str, Any]:
    return {
        "type": "scatter",
        "mode": "lines",
        "name": name,
        "x": _ms(ts),
        "y": _typed(y),
        "yaxis": axis,
        "line": {"color": colour, "width": 1.2},
    }


def _event_shapes(events: pd.DataFrame) -> list[dict[str, Any]]:
    shapes = []
    if events is None or events.empty:
        return shapes
    for when, state in zip(pd.to_datetime(events["ts"], utc=True), events["state_to"], strict=True):
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": when.value / 1e6,
                "x1": when.value / 1e6,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#2ca02c" if state == "active" else "#7f0000", "dash": "dash"},
            }
        )
    return shapes


def _price_figure(closes: Any, frame: pd.DataFrame, summary: dict[str, Any]) -> dict[str, Any]:
    """One close line plus entry/exit markers per symbol; a dropdown shows one symbol at a time."""
    if closes is None:
        return {"data": [], "layout": {"title": {"text": "no price data"}}}
    symbols = list(closes.symbols)
    starts = np.searchsorted(closes.sym, np.arange(len(symbols) + 1))
    data: list[dict[str, Any]] = []
    per_symbol = 3
    for k, symbol in enumerate(symbols):
        lo, hi = int(starts[k]), int(starts[k + 1])
        ts, close = closes.ts[lo:hi], closes.close[lo:hi]
        keep = thin_indices(close, PRICE_POINTS) if len(close) else np.arange(0)
        visible = k == 0
        price = _line(ts[keep], close[keep], f"{symbol} close", "#4a90c8", "y")
        price["visible"] = visible
        rows = frame[frame["symbol"] == symbol]
        if len(rows) > MARKED_TRADES:
            rows = rows.iloc[np.linspace(0, len(rows) - 1, MARKED_TRADES).astype(int)]
        data += [price, *_markers(rows, visible)]
    buttons = []
    for k, symbol in enumerate(symbols):
        shown = [j // per_symbol == k for j in range(len(data))]
        n = int((frame["symbol"] == symbol).sum())
        note = f" ({MARKED_TRADES:,} of {n:,} trades marked)" if n > MARKED_TRADES else ""
        buttons.append(
            {
                "label": symbol,
                "method": "update",
                "args": [
                    {"visible": shown},
                    {"title.text": f"{symbol}: close, entries and exits{note}"},
                ],
            }
        )
    first_note = buttons[0]["args"][1]["title.text"] if buttons else "prices"
    layout = {
        "title": {"text": first_note, "x": 0.01},
        "height": 460,
        "margin": {"l": 70, "r": 20, "t": 80, "b": 40},
        "xaxis": {"type": "date"},
        "yaxis": {"title": {"text": "price"}},
        "legend": {"orientation": "h", "y": 1.12},
        "updatemenus": [
            {
                "buttons": buttons,
                "type": "buttons" if len(buttons) <= MENU_BUTTONS else "dropdown",
                "direction": "left" if len(buttons) <= MENU_BUTTONS else "down",
                "x": 1.0,
                "xanchor": "right",
                "y": 1.22,
                "yanchor": "top",
                "showactive": True,
            }
        ],
    }
    return {"data": data, "layout": layout}


def _markers(rows: pd.DataFrame, visible: bool) -> list[dict[str, Any]]:
    wins = rows["pnl"].to_numpy(dtype=np.float64) > 0
    out = []
    for side, column, price, symbol in (
        ("entry", "entry_ts", "entry_price", "triangle-up"),
        ("exit", "exit_ts", "exit_price", "triangle-down"),
    ):
        colour = "#1f4e79" if side == "entry" else None
        out.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": side if side == "entry" else "exit (green win, red loss)",
                "x": _ms(rows[column].to_numpy(dtype=np.int64)),
                "y": _typed(rows[price].to_numpy(dtype=np.float64)),
                "customdata": _typed(rows["pnl"].to_numpy(dtype=np.float64)),
                "hovertemplate": f"{side} %{{y}}<br>trade pnl %{{customdata:,.2f}}<extra></extra>",
                "marker": {
                    "symbol": symbol,
                    "size": 9,
                    "color": colour or ["#2ca02c" if w else "#d62728" for w in wins],
                    "line": {"color": "white", "width": 0.5},
                },
                "visible": visible,
            }
        )
    return out


def _page(
    summary: dict[str, Any],
    figures: dict[str, dict[str, Any]],
    frame: pd.DataFrame,
    events: pd.DataFrame,
) -> str:
    stats = summary.get("stats") or {}
    ks = summary.get("kill_switch") or {}
    title = f"{summary.get('strategy', '?')} on {', '.join(summary.get('symbols', [])[:6])}"
    head = (
        f"status <b>{html.escape(str(summary.get('status')))}</b>, kill switch "
        f"{html.escape(str(ks.get('state', '?')))}"
        + (
            f" ({html.escape(str(ks.get('code')))}: {html.escape(str(ks.get('reason')))})"
            if ks.get("code")
            else ""
        )
        + f" &middot; run <code>{html.escape(str(summary.get('run_id', '')))}</code>"
        + f" &middot; digest <code>{html.escape(str(summary.get('digest', ''))[:12])}</code>"
    )
    charts = "".join(f'<div id="{name}" class="chart"></div>' for name in figures)
    payload = json.dumps(figures, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return _TEMPLATE.format(
        title=html.escape(title),
        head=head,
        charts=charts,
        stats=_stats_table(stats),
        trades=_trades_table(frame),
        events=_events_table(events),
        plotly=_plotly_gz_b64(),
        figures=payload,
    )


def _stats_table(stats: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(STAT_LABELS.get(k, k))}</th><td>{html.escape(format_stat(k, v))}</td>"
        f"<td><code>{k}</code></td></tr>"
        for k, v in stats.items()
    )
    return f'<table id="stats-table"><thead><tr><th>statistic</th><th>value</th><th>key</th></tr></thead><tbody>{rows}</tbody></table>'


def _trades_table(frame: pd.DataFrame) -> str:
    shown = frame.head(TABLE_TRADES)
    extra = [c for c in ("fees", "exit_reason") if c in frame]
    header = [
        "symbol",
        "entry",
        "entry price",
        "exit",
        "exit price",
        "size",
        "pnl",
        "return %",
        *extra,
    ]
    body = []
    for row in shown.itertuples(index=False):
        ret = row.pnl / (abs(row.size) * row.entry_price) * 100 if row.size else float("nan")
        cells = [
            row.symbol,
            iso(row.entry_ts),
            f"{row.entry_price:g}",
            iso(row.exit_ts),
            f"{row.exit_price:g}",
            f"{row.size}",
            f"{row.pnl:,.2f}",
            f"{ret:.2f}",
            *(str(getattr(row, c)) for c in extra),
        ]
        cls = "win" if row.pnl > 0 else "loss"
        body.append(
            f'<tr class="{cls}">'
            + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
            + "</tr>"
        )
    note = (
        f"<p class=note>First {TABLE_TRADES:,} of {len(frame):,} trades; all are in <code>trades.csv</code>.</p>"
        if len(frame) > TABLE_TRADES
        else f"<p class=note>{len(frame):,} closed trades (also in <code>trades.csv</code>).</p>"
    )
    head = "".join(f"<th>{h}</th>" for h in header)
    return f'{note}<table id="trades-table"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _events_table(events: pd.DataFrame) -> str:
    if events is None or events.empty:
        return '<p id="events-none" class=note>The kill switch never changed state.</p>'
    rows = "".join(
        f"<tr><td>{html.escape(str(pd.Timestamp(ts).isoformat()))}</td><td>{html.escape(str(state))}</td>"
        f"<td>{html.escape(str(code or ''))}</td></tr>"
        for ts, state, code in zip(events["ts"], events["state_to"], events["code"], strict=True)
    )
    return f'<table id="events-table"><thead><tr><th>ts</th><th>state</th><th>code</th></tr></thead><tbody>{rows}</tbody></table>'


@lru_cache(maxsize=1)
def _plotly_gz_b64() -> str:
    """plotly.min.js, gzip-compressed and base64-encoded (once per process)."""
    import plotly

    source = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return base64.b64encode(gzip.compress(source.read_bytes(), compresslevel=6, mtime=0)).decode()


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{font-family: system-ui, sans-serif; margin: 1.2rem 2rem; color: #222;}}
h1 {{font-size: 1.3rem; margin-bottom: .2rem;}}
h2 {{font-size: 1.05rem; margin-top: 1.6rem;}}
.chart {{width: 100%; min-height: 420px;}}
table {{border-collapse: collapse; font-size: .85rem;}}
th, td {{border-bottom: 1px solid #e4e4e4; padding: .2rem .6rem; text-align: right;}}
th:first-child, td:first-child {{text-align: left;}}
#trades-table tr.win td:nth-child(7) {{color: #2a7d2a;}}
#trades-table tr.loss td:nth-child(7) {{color: #b22222;}}
.note {{color: #555; font-size: .85rem;}}
.scroll {{max-height: 32rem; overflow: auto;}}
#load-error {{color: #b22222;}}
.cols {{display: flex; gap: 2.5rem; flex-wrap: wrap; align-items: flex-start;}}
</style></head>
<body>
<h1>{title}</h1>
<p class=note>{head}</p>
<p id="load-error"></p>
{charts}
<div class=cols>
<section><h2>Statistics</h2>{stats}
<p class=note>Sharpe, Sortino and volatility: daily equity returns, annualised (empyrical-reloaded);
the rest follow backtesting.py's definitions (docs/statistics.md).</p></section>
<section><h2>Kill-switch events</h2>{events}</section>
</div>
<h2>Trades</h2>
<div class=scroll>{trades}</div>
<script id="plotly-gz" type="application/octet-stream">{plotly}</script>
<script id="figures" type="application/json">{figures}</script>
<script>
(async function () {{
  try {{
    const b64 = document.getElementById("plotly-gz").textContent;
    const bytes = Uint8Array.from(atob(b64), function (c) {{ return c.charCodeAt(0); }});
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    const code = await new Response(stream).text();
    const script = document.createElement("script");
    script.text = code;
    document.head.appendChild(script);
    script.remove();  // ran; keep 4.8 MB of source out of the live DOM
    const figures = JSON.parse(document.getElementById("figures").textContent);
    for (const [id, fig] of Object.entries(figures)) {{
      await Plotly.newPlot(id, fig.data, fig.layout, {{responsive: true, displaylogo: false}});
    }}
    document.body.setAttribute("data-rendered", "yes");
  }} catch (err) {{
    document.getElementById("load-error").textContent =
      "The charts could not load in this browser (" + err + "); the tables below are complete.";
  }}
}})();
</script>
</body></html>
"""
