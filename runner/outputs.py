"""Run outputs (DESIGN section 4): summary.json, trades.csv, metrics.json, summary.md, equity.png."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.execution.records import record_columns
from components.execution.row_repr import float_reprs

TRADE_COLUMNS = [
    "symbol",
    "entry_ts",
    "entry_price",
    "exit_ts",
    "exit_price",
    "size",
    "fees",
    "pnl",
    "exit_reason",
]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def iso(ts_us: int | None) -> str | None:
    """Return an ISO-8601 timestamp with offset for epoch microseconds (UTC)."""
    if ts_us is None:
        return None
    return (_EPOCH + dt.timedelta(microseconds=int(ts_us))).isoformat()


def atomic_write(path: Path, text: str, *, fsync: bool = True) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see half a file.

    ``fsync=False`` (multirun jobs) leaves the flush to disk to the OS and to the sweep's one
    ``os.sync()`` at its end (``runner.job_cache.sync_sweep_files``): a job's files are made
    durable by resume, which reruns any job whose ``summary.json`` is not a complete run's, not
    by one fsync per file (~0.5-1 ms each, five per job).
    """
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_trades_csv(path: Path, trades: list[Any]) -> None:
    """Write closed round trips (``TradeRow`` records) in the contract's columns.

    The bytes are ``csv.writer``'s (``\\r\\n`` line ends, floats as ``repr``), built a column at
    a time: timestamps by numpy, floats by the digest's Arrow kernels (``row_repr``), ~10 ms for
    18k trades where a ``writerow`` per trade took ~120 ms. When a symbol or exit reason needs
    quoting (a comma, a quote, a line break), ``csv.writer`` writes the same column text.
    """
    by_name = record_columns(trades)
    columns = [_trade_column(name, by_name[name]) for name in TRADE_COLUMNS] if trades else []
    quoted = any(  # only the text columns can hold what csv.writer quotes
        _CSV_SPECIAL.search(text)
        for name, column in zip(TRADE_COLUMNS, columns, strict=False)  # no columns: no trades
        if name in _TRADE_TEXTS
        for text in set(column)
    )
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRADE_COLUMNS)
        if quoted:  # csv.writer quotes the fields that need it (~7x slower than the join)
            writer.writerows(zip(*columns, strict=True))
        elif trades:
            handle.write("\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n")
    os.replace(tmp, path)


_CSV_SPECIAL = re.compile(r'[,"\r\n]')  # what csv.writer (QUOTE_MINIMAL) would quote
_TRADE_FLOATS = frozenset({"entry_price", "exit_price", "fees", "pnl"})
_TRADE_TEXTS = frozenset({"symbol", "exit_reason"})


def _trade_column(name: str, values: Sequence[Any]) -> list[str]:
    """Return one trades.csv column as text: ``iso`` timestamps, ``repr`` floats, ints, strings."""
    if name in _TRADE_FLOATS:
        return float_reprs(values)
    if name.endswith("_ts"):
        return iso_column(values)
    if name == "size":
        return [str(int(v)) for v in values]
    return [str(v) for v in values]


def iso_column(ts_us: Sequence[int]) -> list[str]:
    """Return ``iso`` of every epoch-microsecond value (numpy formats them all at once)."""
    values = np.asarray(ts_us, dtype=np.int64)
    stamps = values.astype("datetime64[us]")
    text = np.datetime_as_string(stamps, unit="s").tolist()
    fractional = np.flatnonzero(values % 1_000_000)  # isoformat shows microseconds only if any
    if len(fractional):
        for i, t in zip(
            fractional.tolist(),
            np.datetime_as_string(stamps[fractional], unit="us").tolist(),
            strict=True,
        ):
            text[i] = t
    return [t + "+00:00" for t in text]


def write_json(path: Path, payload: dict[str, Any], *, fsync: bool = True) -> None:
    atomic_write(
        path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n", fsync=fsync
    )


def open_positions_json(positions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in positions:
        item = dict(p)
        item["entry_ts"] = iso(item.pop("entry_ts_us"))
        out.append(item)
    return out


STAT_LABELS = {
    "start": "start",
    "end": "end",
    "duration_days": "duration",
    "exposure_pct": "exposure time",
    "equity_final": "equity final",
    "equity_peak": "equity peak",
    "return_pct": "return",
    "buy_hold_return_pct": "buy & hold return",
    "return_ann_pct": "return (annualised)",
    "volatility_ann_pct": "volatility (annualised)",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "calmar": "Calmar ratio",
    "max_drawdown_pct": "max drawdown",
    "avg_drawdown_pct": "avg drawdown",
    "max_drawdown_duration_days": "max drawdown duration",
    "avg_drawdown_duration_days": "avg drawdown duration",
    "n_trades": "trades",
    "win_rate_pct": "win rate",
    "best_trade_pct": "best trade",
    "worst_trade_pct": "worst trade",
    "avg_trade_pct": "avg trade (geometric)",
    "max_trade_duration_days": "max trade duration",
    "avg_trade_duration_days": "avg trade duration",
    "profit_factor": "profit factor",
    "expectancy_pct": "expectancy",
    "sqn": "SQN",
    "total_fees": "fees paid",
    "turnover": "turnover (x average equity)",
    "psr": "probabilistic Sharpe (P[SR > 0])",
}


def format_stat(key: str, value: Any) -> str:
    """Return one statistic as a reader sees it: units, signs and a dash for undefined."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if key.endswith("_pct"):
        return f"{value:,.2f} %"
    if key.endswith("_days"):
        return f"{value:,.1f} days" if value % 1 else f"{value:,.0f} days"
    if key in ("equity_final", "equity_peak", "total_fees"):
        return f"{value:,.2f}"
    if key == "n_trades":
        return f"{value:,}"
    return f"{value:.3f}"


def stats_markdown(stats: dict[str, Any]) -> list[str]:
    """Return the statistics table of summary.md (every key of ``summary.json``'s ``stats``)."""
    lines = ["## Statistics", "", "| statistic | value | key in summary.json |", "|---|---|---|"]
    lines += [
        f"| {STAT_LABELS.get(k, k)} | {format_stat(k, v)} | `stats.{k}` |" for k, v in stats.items()
    ]
    return [
        *lines,
        "",
        "Sharpe, Sortino and volatility: daily equity returns, annualised (empyrical-reloaded); "
        "the rest follow backtesting.py's definitions. Formulas: docs/statistics.md.",
        "",
    ]


def headline(stats: dict[str, Any]) -> str:
    """Return the console's trading figures: return, Sharpe, max drawdown."""
    ret, sharpe, dd = (stats.get(k) for k in ("return_pct", "sharpe", "max_drawdown_pct"))
    return (
        f"return {'-' if ret is None else f'{ret:+.2f} %'}, "
        f"Sharpe {'-' if sharpe is None else f'{sharpe:.2f}'}, "
        f"max drawdown {'-' if dd is None else f'{dd:.2f} %'}"
    )


def _results_note(results: str) -> str:
    if results == "results.duckdb":
        return "`results.duckdb` (query with DuckDB SQL)"
    return (
        f"`{results}/` (Parquet, one file per table and batch; DuckDB SQL: "
        f"`SELECT * FROM read_parquet('{results}/trades-*.parquet')`)"
    )


def summary_markdown(
    summary: dict[str, Any], trades: list[tuple], has_plot: bool, results: str = "results.duckdb"
) -> str:
    """Return a short human report of the run."""
    m = summary["metrics"]
    ks = summary["kill_switch"]
    lines = [
        f"# Backtest {summary['run_id']}",
        "",
        f"Status **{summary['status']}** - strategy `{summary['strategy']}` on {', '.join(summary['symbols'][:10])}"
        f"{' ...' if len(summary['symbols']) > 10 else ''}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| closed trades | {summary['n_trades']} |",
        f"| total pnl | {summary['total_pnl']:,.2f} |",
        f"| total fees | {summary.get('total_fees', 0.0):,.2f} (borrow {summary.get('total_borrow', 0.0):,.2f}) |",
        f"| final equity | {summary['final_equity']:,.2f} |",
        f"| return | {summary['return_pct']:.2f} % |",
        f"| max drawdown | {summary['max_drawdown_pct']:.2f} % |",
        f"| win rate | {summary['win_rate_pct']:.1f} % |",
        f"| open positions | {len(summary['open_positions'])} |",
        f"| kill switch | {ks['state']}{' (' + ks['code'] + ': ' + ks['reason'] + ')' if ks['code'] else ''}"
        f"{', mode ' + ks['mode'] if ks.get('mode') else ''} |",
        f"| bars | {m['bars']:,} in {m['wall_seconds']:.2f} s ({m['bars_per_second']:,.0f} bars/s) |",
        f"| signals | {m['signals_received']} received, {m['signals_accepted']} accepted, {m['signals_denied']} denied |",
        f"| market DB queries | {m['market_db_queries']} (analytics {m['analytics_queries']}, cache hits {m['cache_hits']}) |",
        f"| market DB | `{summary.get('market_db', '?')}` version {summary.get('market_db_version', '?')} |",
        f"| digest | `{summary['digest']}` |",
        "",
    ]
    denied = m.get("denied_by_reason") or {}
    if denied:
        lines.insert(
            -3, f"| denials by reason | {', '.join(f'{code} {n}' for code, n in denied.items())} |"
        )
    if summary.get("status") == "interrupted" and summary.get("stopped_at"):
        lines.insert(-3, f"| stopped at | {summary['stopped_at']} |")
    if has_plot:
        lines += ["![equity and drawdown](equity.png)", ""]
    if summary.get("stats"):
        lines += stats_markdown(summary["stats"])
    if summary.get("open_positions"):
        lines += [
            "## Open at the end (not trades; marked at the last close)",
            "",
            "| symbol | entry | entry price | size | mark price | unrealized pnl |",
            "|---|---|---|---|---|---|",
        ]
        for pos in summary["open_positions"]:
            lines.append(
                f"| {pos['symbol']} | {pos['entry_ts']} | {pos['entry_price']:g} | {pos['size']} | "
                f"{pos['mark_price']:g} | {pos['unrealized_pnl']:,.2f} |"
            )
        lines.append("")
    if trades:
        lines += [
            "## Trades (first 20)",
            "",
            "| symbol | entry | entry price | exit | exit price | size | fees | pnl | exit reason |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for t in trades[:20]:
            lines.append(
                f"| {t.symbol} | {iso(t.entry_ts)} | {t.entry_price:g} | {iso(t.exit_ts)} | "
                f"{t.exit_price:g} | {t.size} | {t.fees:,.2f} | {t.pnl:,.2f} | {t.exit_reason} |"
            )
        lines.append("")
    lines += [
        f"Files: `trades.csv`, `summary.json`, `metrics.json`, {_results_note(results)}, "
        "`runner.log`; the overrides you typed are in `.hydra/overrides.yaml`.",
        "",
    ]
    return "\n".join(lines)


MAX_MARKED_TRADES = (
    150  # more round trips than this are summarised per period, not marked one by one
)
PLOT_POINTS = (
    4000  # equity points drawn at most (min and max of each bucket, so no extreme is lost)
)
_ENTRY, _WIN, _LOSS, _OPEN, _LINE = "#1f4e79", "#2ca02c", "#d62728", "#ff7f0e", "#4a90c8"


def kill_switch_events(con: Any) -> pd.DataFrame:
    """Return the run's kill-switch state changes (ts, state_to, code) from the results DB, if any."""
    columns = ["ts", "state_to", "code"]
    if con is None:
        return pd.DataFrame(columns=columns)
    return con.execute("SELECT ts, state_to, code FROM kill_switch_events ORDER BY ts").df()[
        columns
    ]


def plot_equity(
    path: Path,
    equity: pd.DataFrame,
    trades: list[tuple],
    summary: dict[str, Any],
    events: pd.DataFrame | None = None,
    buy_hold: Any = None,
) -> bool:
    """Draw equity with entries and exits marked, and drawdown below; return True when written.

    ``equity`` has ``ts`` and ``equity`` columns (one row per clock step), ``trades`` are the
    broker's closed round trips, ``summary`` the run's summary (title, open positions) and
    ``events`` the kill-switch state changes (a vertical line each; the span after a halt is
    shaded), ``buy_hold`` the buy & hold equity per clock step (a grey line). With more than
    ``MAX_MARKED_TRADES`` trades a middle panel counts wins and losses per period instead.
    """
    if equity.empty:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = _naive_utc(equity)
    if buy_hold is not None and len(buy_hold) == len(curve):
        curve["buy_hold"] = buy_hold
    many = len(trades) > MAX_MARKED_TRADES
    ratios = [3, 1, 1.2] if many else [3, 1.2]
    fig, axes = plt.subplots(
        len(ratios),
        1,
        figsize=(12, 7.5 if many else 6.5),
        sharex=True,
        gridspec_kw={"height_ratios": ratios},
    )
    top, bottom = axes[0], axes[-1]
    _draw_equity(top, curve, summary)
    frame = _trade_frame(trades)
    if many:
        _draw_trade_counts(axes[1], frame, curve)
    else:
        _mark_trades(top, curve, frame, summary.get("open_positions", []))
    _mark_kill_switch(axes, events)
    _mark_stop(axes, curve, summary, events)
    top.legend(loc="best", fontsize=8, framealpha=0.9, ncols=2 if len(frame) and many else 1)
    _draw_drawdown(bottom, curve)
    _format_time_axis(bottom)
    fig.suptitle(_title(summary), fontsize=12, fontweight="bold", x=0.01, ha="left")
    top.set_title(_subtitle(summary), fontsize=9, loc="left", color="#444444")
    fig.tight_layout()
    tmp = path.with_name("equity.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def _naive_utc(equity: pd.DataFrame) -> pd.DataFrame:
    """Return ts (naive UTC, for matplotlib's date axis), equity and drawdown % per clock step."""
    raw = equity["ts"]
    unit = "us" if pd.api.types.is_integer_dtype(raw) else None
    ts = pd.to_datetime(raw, utc=True, unit=unit).dt.tz_localize(None)
    values = equity["equity"].astype(float).to_numpy()
    peak = pd.Series(values).cummax().to_numpy()
    return pd.DataFrame(
        {"ts": ts.to_numpy(), "equity": values, "drawdown": (values / peak - 1.0) * 100}
    )


def _thin(curve: pd.DataFrame, column: str) -> pd.DataFrame:
    """Keep at most ``PLOT_POINTS`` rows: the min and max of ``column`` in each bucket."""
    if len(curve) <= PLOT_POINTS:
        return curve
    bucket = pd.Series(range(len(curve))) * (PLOT_POINTS // 2) // len(curve)
    grouped = curve[column].reset_index(drop=True).groupby(bucket)
    keep = sorted(set(grouped.idxmin()) | set(grouped.idxmax()))
    return curve.iloc[keep]


def _draw_equity(ax: Any, curve: pd.DataFrame, summary: dict[str, Any]) -> None:
    from matplotlib.ticker import FuncFormatter

    thin = _thin(curve, "equity")
    ax.plot(thin["ts"], thin["equity"], color=_LINE, linewidth=1.1, label="equity", zorder=2)
    if "buy_hold" in thin:
        bh = summary.get("stats", {}).get("buy_hold_return_pct")
        label = "buy & hold" + (f" ({bh:+.1f} %)" if bh is not None else "")
        target = ax
        if buy_hold_dwarfs(curve["equity"].to_numpy(), curve["buy_hold"].to_numpy()):
            target = ax.twinx()  # on the equity axis it would flatten the strategy's curve
            target.set_ylabel("buy & hold equity (right axis)", color="#777777")
            target.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
            label += ", right axis"
        target.plot(thin["ts"], thin["buy_hold"], color="#9a9a9a", linewidth=0.9, zorder=1.5)
        ax.plot([], [], color="#9a9a9a", linewidth=0.9, label=label)  # legend entry on ax
    cash = summary.get("initial_cash")
    if cash:
        ax.axhline(
            cash,
            color="#888888",
            linewidth=0.8,
            linestyle="--",
            label=f"starting cash {cash:,.0f}",
            zorder=1,
        )
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_ylabel("equity")
    ax.grid(alpha=0.3)


def buy_hold_dwarfs(equity: Any, buy_hold: Any) -> bool:
    """Return True when buy & hold spans over 3x the equity's range (then it gets its own axis)."""
    import numpy as np

    span = float(np.ptp(equity)) if len(equity) else 0.0
    return float(np.ptp(buy_hold)) > 3 * span if len(buy_hold) else False


def _trade_frame(trades: list[tuple]) -> pd.DataFrame:
    from components.results.stats import trades_frame

    frame = trades_frame(trades)
    for col in ("entry_ts", "exit_ts"):
        frame[col] = pd.to_datetime(frame[col].astype("int64"), unit="us")
    return frame


def _equity_at(curve: pd.DataFrame, stamps: pd.Series) -> pd.Series:
    """Return the equity at each of ``stamps`` (the last clock step at or before it)."""
    idx = curve["ts"].searchsorted(stamps.to_numpy(), side="right") - 1
    return pd.Series(curve["equity"].to_numpy()[idx.clip(0)], index=stamps.index)


def _mark_trades(
    ax: Any, curve: pd.DataFrame, frame: pd.DataFrame, open_positions: list[dict[str, Any]]
) -> None:
    """Mark each entry (triangle up) and exit (triangle down: green win, red loss) on the curve."""
    if len(frame) and frame["symbol"].nunique() > 1:
        _mark_trades_by_symbol(ax, curve, frame)
    elif len(frame):
        ax.scatter(
            frame["entry_ts"],
            _equity_at(curve, frame["entry_ts"]),
            marker="^",
            s=42,
            color=_ENTRY,
            edgecolor="white",
            linewidth=0.5,
            zorder=4,
            label="entry (buy)",
        )
        wins = frame["pnl"] > 0
        for mask, colour, label in ((wins, _WIN, "exit, win"), (~wins, _LOSS, "exit, loss")):
            if mask.any():
                exits = frame.loc[mask, "exit_ts"]
                ax.scatter(
                    exits,
                    _equity_at(curve, exits),
                    marker="v",
                    s=42,
                    color=colour,
                    edgecolor="white",
                    linewidth=0.5,
                    zorder=5,
                    label=label,
                )
    if open_positions:
        stamps = pd.Series(
            pd.to_datetime([p["entry_ts"] for p in open_positions], utc=True).tz_localize(None)
        )
        ax.scatter(
            stamps,
            _equity_at(curve, stamps),
            marker="^",
            s=60,
            facecolor="none",
            edgecolor=_OPEN,
            linewidth=1.4,
            zorder=5,
            label="entry still open at the end",
        )


_SYMBOL_COLOURS = (
    "#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
)  # fmt: skip


def _mark_trades_by_symbol(ax: Any, curve: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Several symbols: one colour per symbol (legend), entry up, exit down (edge green win, red loss)."""
    symbols = sorted(frame["symbol"].unique())
    shown = symbols[: len(_SYMBOL_COLOURS) - 1]
    for k, symbol in enumerate(symbols):
        colour = _SYMBOL_COLOURS[min(k, len(_SYMBOL_COLOURS) - 1)]
        rows = frame[frame["symbol"] == symbol]
        label = symbol if symbol in shown else ("other symbols" if k == len(shown) else None)
        ax.scatter(
            rows["entry_ts"],
            _equity_at(curve, rows["entry_ts"]),
            marker="^",
            s=40,
            color=colour,
            edgecolor="white",
            linewidth=0.5,
            zorder=4,
            label=label,
        )
        edges = [_WIN if p > 0 else _LOSS for p in rows["pnl"]]
        ax.scatter(
            rows["exit_ts"],
            _equity_at(curve, rows["exit_ts"]),
            marker="v",
            s=40,
            color=colour,
            edgecolor=edges,
            linewidth=1.0,
            zorder=5,
        )
    for marker, text in (("^", "entry"), ("v", "exit (edge: green win, red loss)")):
        ax.scatter([], [], marker=marker, color="#444444", label=text)


def _mark_stop(
    axes: Any, curve: pd.DataFrame, summary: dict[str, Any], events: pd.DataFrame | None
) -> None:
    """Shade the span where the run no longer traded: after a halt (kill switch) or an interrupt."""
    when, text = None, ""
    if events is not None and len(events):
        tripped = events[events["state_to"] != "active"]
        if len(tripped):
            when = pd.to_datetime(tripped["ts"].iloc[0], utc=True).tz_localize(None)
            state, code = tripped["state_to"].iloc[0], tripped["code"].iloc[0]
            text = f"{state} ({code}): no new entries from here" if code else f"{state} from here"
    if when is None and summary.get("status") == "interrupted" and summary.get("stopped_at"):
        when = pd.Timestamp(summary["stopped_at"]).tz_convert("UTC").tz_localize(None)
        text = "interrupted here"
    if when is None:
        return
    end = max(curve["ts"].iloc[-1], when)
    for ax in axes:
        ax.axvspan(when, end, color="#7f0000", alpha=0.08, zorder=0, linewidth=0)
    axes[-1].annotate(
        text,
        (when, 0.0),
        xycoords=("data", "axes fraction"),
        xytext=(4, 4),
        textcoords="offset points",
        va="bottom",
        fontsize=8,
        color="#7f0000",
    )


def _mark_kill_switch(axes: Any, events: pd.DataFrame | None) -> None:
    """Draw a vertical line where the kill switch changed state: red when it tripped, green on reset."""
    if events is None or events.empty:
        return
    stamps = pd.to_datetime(events["ts"], utc=True).dt.tz_localize(None)
    labelled: set[str] = set()
    for when, state, code in zip(stamps, events["state_to"], events["code"], strict=True):
        colour = "#2ca02c" if state == "active" else "#7f0000"
        label = f"kill switch -> {state}" + (f" ({code})" if code and state != "active" else "")
        if len(events) <= 3:
            label += f", {when:%Y-%m-%d %H:%M}"
        for k, ax in enumerate(axes):
            first = k == 0 and label not in labelled
            ax.axvline(
                when,
                color=colour,
                linewidth=1.2,
                linestyle="--",
                zorder=6,
                label=label if first else None,
            )
        labelled.add(label)


def _draw_trade_counts(ax: Any, frame: pd.DataFrame, curve: pd.DataFrame) -> None:
    """Too many trades to mark: count wins (up) and losses (down) closed in each period."""
    import numpy as np
    from matplotlib.ticker import FuncFormatter

    lo, hi = curve["ts"].iloc[0], curve["ts"].iloc[-1]
    edges = pd.date_range(lo, hi if hi > lo else lo + pd.Timedelta(seconds=1), periods=61)
    exits = frame["exit_ts"]
    win_counts, _ = np.histogram(
        exits[frame["pnl"] > 0].astype("int64"), bins=edges.astype("int64")
    )
    loss_counts, _ = np.histogram(
        exits[frame["pnl"] <= 0].astype("int64"), bins=edges.astype("int64")
    )
    width = (edges[1] - edges[0]) * 0.9
    ax.bar(edges[:-1], win_counts, width=width, align="edge", color=_WIN)
    ax.bar(edges[:-1], -loss_counts, width=width, align="edge", color=_LOSS)
    ax.axhline(0, color="#444444", linewidth=0.6)
    ax.set_ylabel("trades closed")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{abs(v):,.0f}"))
    ax.set_title(
        f"{len(frame):,} round trips, too many to mark: wins (up, green) and losses (down, red) "
        f"closed per {_duration_text(edges[1] - edges[0])}",
        fontsize=8,
        loc="left",
        color="#444444",
    )
    ax.grid(alpha=0.3)


def _duration_text(span: pd.Timedelta) -> str:
    seconds = span.total_seconds()
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} seconds"


def _draw_drawdown(ax: Any, curve: pd.DataFrame) -> None:
    thin = _thin(curve, "drawdown")
    ax.fill_between(thin["ts"], thin["drawdown"], 0, color=_LOSS, alpha=0.35, linewidth=0)
    ax.plot(thin["ts"], thin["drawdown"], color=_LOSS, linewidth=0.6)
    worst = curve["drawdown"].idxmin()
    low = curve["drawdown"].iloc[worst]
    if low < 0:
        when = curve["ts"].iloc[worst]
        ax.scatter([when], [low], color="#7f0000", s=16, zorder=3)
        right_half = when > curve["ts"].iloc[0] + (curve["ts"].iloc[-1] - curve["ts"].iloc[0]) / 2
        ax.annotate(
            f"max drawdown {low:.2f} % ({when:%Y-%m-%d})",
            (when, low),
            textcoords="offset points",
            xytext=(-8 if right_half else 8, -2),
            ha="right" if right_half else "left",
            va="top",
            fontsize=8,
            color="#7f0000",
        )
    ax.set_ylabel("drawdown %")
    ax.set_ylim(min(low * 1.35, -0.01), 0)
    ax.grid(alpha=0.3)


def _format_time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("time (UTC)")


def _title(summary: dict[str, Any]) -> str:
    symbols = list(summary.get("symbols", []))
    if len(symbols) <= 4:
        universe = ", ".join(symbols)
    else:
        universe = f"{len(symbols)} symbols ({', '.join(symbols[:3])}, ... {symbols[-1]})"
    return f"{summary.get('strategy', '?')} on {universe}: return {summary.get('return_pct', 0.0):+.2f} %"


def _subtitle(summary: dict[str, Any]) -> str:
    ks = summary.get("kill_switch") or {}
    parts = [
        f"{summary.get('n_trades', 0):,} closed trades, win rate {summary.get('win_rate_pct', 0.0):.0f} %",
        f"max drawdown {summary.get('max_drawdown_pct', 0.0):.2f} %",
        f"final equity {summary.get('final_equity', 0.0):,.2f}",
        f"{len(summary.get('open_positions', []))} open at the end",
    ]
    status = summary.get("status", "completed")
    if status != "completed" or ks.get("state", "active") != "active":
        parts.append(
            f"status {status.upper()}, kill switch {ks.get('state', '?')}"
            + (f" ({ks['code']})" if ks.get("code") else "")
            + (f", mode {ks['mode']}" if ks.get("mode") else "")
        )
    return " | ".join(parts) + f"\nrun {summary.get('run_id', '')}"
