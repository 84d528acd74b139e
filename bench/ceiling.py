"""The ceiling: the same sma_cross as a bare numpy/Python loop over the same DuckDB data.

One query fetches every bar (ordered by symbol, ts), numpy computes both moving averages and the
crosses per symbol, and a plain Python loop over the cross events opens and closes positions at
the next bar's open. No validation, no records, no kill switch, no persistence: the fastest this
strategy can be answered from the DB, so the runner's bars/s is reported as a fraction of it.
It also counts the closed trades and their pnl, which must equal the runner's (same semantics).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from components.strategies.indicators import previous_nonzero, rolling_sum

ORDER_SIZE = 100


def sma_cross_trades(
    open_: np.ndarray, close: np.ndarray, fast: int, slow: int
) -> tuple[int, float]:
    """Return (closed trades, total pnl) of long-only sma_cross on one symbol's bars."""
    if len(close) <= slow:
        return 0, 0.0
    fast_ma = rolling_sum(close, fast)[slow - fast :] / fast  # value at bar slow-1+j
    slow_ma = rolling_sum(close, slow) / slow
    sign = np.sign(fast_ma - slow_ma).astype(np.int64)
    prev = previous_nonzero(sign, 0)
    bar = np.arange(slow - 1, len(close))
    evaluated = bar >= slow
    ups = bar[evaluated & (sign > 0) & (prev < 0)]
    downs = bar[evaluated & (sign < 0) & (prev > 0)]
    events = sorted([(int(b), 1) for b in ups] + [(int(b), -1) for b in downs])
    trades, pnl, entry, last = 0, 0.0, None, len(close) - 1
    for (
        b,
        side,
    ) in events:  # the decision on bar b fills at bar b+1's open; the last bar never fills
        if b >= last:
            break
        if side > 0 and entry is None:
            entry = open_[b + 1]
        elif side < 0 and entry is not None:
            trades, pnl, entry = trades + 1, pnl + (open_[b + 1] - entry) * ORDER_SIZE, None
    return trades, pnl


def run_ceiling(db: Path, fast: int = 10, slow: int = 30) -> dict[str, Any]:
    """Fetch, compute and trade every symbol once; return bars, seconds and the trade totals."""
    started = time.perf_counter()
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [
            s for (s,) in con.execute("SELECT DISTINCT symbol FROM bars ORDER BY symbol").fetchall()
        ]
        cols = con.execute(  # the engine's order (ts, symbol); symbol as an integer code, no strings
            "SELECT list_position($names, symbol)::INTEGER - 1 AS sym, open, close FROM bars ORDER BY ts, symbol",
            {"names": names},
        ).fetchnumpy()
    finally:
        con.close()
    fetched = time.perf_counter()
    order = np.argsort(cols["sym"], kind="stable")  # per symbol, still in ts order
    open_, close = cols["open"][order], cols["close"][order]
    bounds = np.searchsorted(cols["sym"][order], np.arange(len(names) + 1))
    trades, pnl = 0, 0.0
    for lo, hi in itertools.pairwise(bounds):
        t, p = sma_cross_trades(open_[lo:hi], close[lo:hi], fast, slow)
        trades, pnl = trades + t, pnl + p
    seconds = time.perf_counter() - started
    return {
        "bars": len(order),
        "seconds": seconds,
        "fetch_seconds": fetched - started,
        "bars_per_second": len(order) / seconds,
        "n_trades": trades,
        "total_pnl": float(pnl),
    }


def best_ceiling(db: Path, repeat: int = 3) -> dict[str, Any]:
    runs = [run_ceiling(db) for _ in range(max(1, repeat))]
    best = min(runs, key=lambda r: r["seconds"])
    best["all_bars_per_second"] = [round(r["bars_per_second"], 1) for r in runs]
    return best


def ceiling_process(db: Path, repeat: int = 3) -> dict[str, Any]:
    """The ceiling as a whole process (interpreter start, imports, fetch, trades), best of ``repeat``.

    The runner's whole-process figure is reported against this as well as against the loop-only
    ceiling: start-up to exit on both sides.
    """
    seconds = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bench.ceiling", str(db)],
            cwd=Path(__file__).resolve().parent.parent,
            check=True,
            capture_output=True,
        )
        seconds.append(time.perf_counter() - started)
    return {"process_seconds": round(min(seconds), 3), "all_process_seconds": seconds}


# The libraries every run imports whatever it does: Hydra composes the config, DuckDB holds the
# bars, numpy the columns, pandas and pyarrow the validation, statistics and results (DESIGN 2-9).
REQUIRED_STACK = ("hydra", "hydra.utils", "omegaconf", "duckdb", "numpy", "pandas", "pyarrow")


def import_floor(repeat: int = 5) -> dict[str, Any]:
    """Time two processes that only start: the required stack's imports, and the runner's own.

    No run can exit sooner than the first; ``python -m runner`` cannot sooner than the second
    (its whole import graph, our modules included, before any config is read). Best of
    ``repeat`` each, as the other process figures.
    """
    root = Path(__file__).resolve().parent.parent
    out: dict[str, Any] = {}
    for name, code in (
        ("stack", "import " + ", ".join(REQUIRED_STACK)),
        ("runner", "import runner.entry"),
    ):
        seconds = []
        for _ in range(max(1, repeat)):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], cwd=root, check=True, capture_output=True)
            seconds.append(time.perf_counter() - started)
        out[f"{name}_import_seconds"] = round(min(seconds), 3)
    return out


if __name__ == "__main__":
    result = run_ceiling(Path(sys.argv[1]))
    print(json.dumps({k: v for k, v in result.items() if k != "all_bars_per_second"}))
