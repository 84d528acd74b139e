"""Run outputs (DESIGN section 4): summary.json, trades.csv, metrics.json, summary.md, equity.png."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

TRADE_COLUMNS = ["symbol", "entry_ts", "entry_price", "exit_ts", "exit_price", "size", "pnl"]


def iso(ts_us: int | None) -> str | None:
    """Return an ISO-8601 timestamp with offset for epoch microseconds (UTC)."""
    if ts_us is None:
        return None
    return pd.Timestamp(int(ts_us), unit="us", tz="UTC").isoformat()


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_trades_csv(path: Path, trades: list[tuple]) -> None:
    """Write closed round trips (rows as the broker records them) in the contract's columns."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(TRADE_COLUMNS)
        for _seq, symbol, entry_ts, entry_price, exit_ts, exit_price, size, pnl in trades:
            writer.writerow([symbol, iso(entry_ts), repr(float(entry_price)), iso(exit_ts),
                             repr(float(exit_price)), int(size), repr(float(pnl))])
    os.replace(tmp, path)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")


def open_positions_json(positions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in positions:
        item = dict(p)
        item["entry_ts"] = iso(item.pop("entry_ts_us"))
        out.append(item)
    return out


def summary_markdown(summary: dict[str, Any], trades: list[tuple], has_plot: bool) -> str:
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
        f"| final equity | {summary['final_equity']:,.2f} |",
        f"| return | {summary['return_pct']:.2f} % |",
        f"| max drawdown | {summary['max_drawdown_pct']:.2f} % |",
        f"| win rate | {summary['win_rate_pct']:.1f} % |",
        f"| open positions | {len(summary['open_positions'])} |",
        f"| kill switch | {ks['state']}{' (' + ks['code'] + ': ' + ks['reason'] + ')' if ks['code'] else ''} |",
        f"| bars | {m['bars']:,} in {m['wall_seconds']:.2f} s ({m['bars_per_second']:,.0f} bars/s) |",
        f"| signals | {m['signals_received']} received, {m['signals_accepted']} accepted, {m['signals_denied']} denied |",
        f"| market DB queries | {m['market_db_queries']} (analytics {m['analytics_queries']}, cache hits {m['cache_hits']}) |",
        f"| digest | `{summary['digest']}` |",
        "",
    ]
    if has_plot:
        lines += ["![equity and drawdown](equity.png)", ""]
    if trades:
        lines += ["## Trades (first 20)", "", "| symbol | entry | entry price | exit | exit price | size | pnl |",
                  "|---|---|---|---|---|---|---|"]
        for _s, sym, ets, ep, xts, xp, size, pnl in trades[:20]:
            lines.append(f"| {sym} | {iso(ets)} | {ep:g} | {iso(xts)} | {xp:g} | {size} | {pnl:,.2f} |")
        lines.append("")
    lines += ["Files: `trades.csv`, `summary.json`, `metrics.json`, `results.duckdb` (query with DuckDB SQL), "
              "`runner.log`.", ""]
    return "\n".join(lines)


def plot_equity(path: Path, equity: pd.DataFrame, trades: list[tuple], title: str) -> bool:
    """Draw equity (top) and drawdown (bottom) with trade exits marked; return True when written."""
    if equity.empty:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    step = max(1, len(equity) // 5000)
    eq = equity.iloc[::step]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot(eq["ts"], eq["equity"], color="#1f77b4", linewidth=1.0, label="equity")
    if trades:
        frame = pd.DataFrame(trades, columns=["seq", "symbol", "entry_ts", "entry_price", "exit_ts", "exit_price",
                                              "size", "pnl"])
        exits = pd.to_datetime(frame["exit_ts"], unit="us", utc=True)
        marks = pd.merge_asof(pd.DataFrame({"ts": exits}).sort_values("ts"),
                              equity[["ts", "equity"]].sort_values("ts"), on="ts")
        colours = ["#2ca02c" if p > 0 else "#d62728" for p in frame.loc[marks.index, "pnl"]]
        top.scatter(marks["ts"], marks["equity"], c=colours, s=14, zorder=3, label="trade exit (green win / red loss)")
    top.set_ylabel("equity")
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    peak = equity["equity"].cummax()
    dd = (equity["equity"] / peak - 1.0) * 100
    bottom.fill_between(equity["ts"].iloc[::step], dd.iloc[::step], 0, color="#d62728", alpha=0.4)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name("equity.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return True
