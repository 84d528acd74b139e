"""Glue between a finished run and ``components.results.stats``: equity, trades, buy & hold anchors.

The statistics function is pure; this module gathers its inputs from what the run left behind:
the equity series (results DB, or kept in memory when ``buffer=memory`` stores nothing), the
broker's trades (tuples or NamedTuples) and the closes buy & hold is measured between (read from
the market DB, which is still open read-only).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.market.base import Universe, time_filter, window_filter
from components.results.stats import compute_stats, trade_columns, trades_frame


def keep_equity_in_memory(
    buffer: Any, *, always: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return a list that collects the equity rows a buffer drops from memory at each flush.

    The memory buffer digests rows and forgets them; the statistics need the equity column, so the
    instance's ``flush`` is wrapped to copy pending equity rows first (one array per flush).
    ``always`` (multirun jobs): keep them for a persistent buffer too, so the statistics do not
    read back from results.duckdb the rows the run just wrote (the same float64 values).
    """
    if always and hasattr(buffer, "kept_equity"):  # it keeps them as it converts rows to Arrow
        return buffer.kept_equity
    kept: list[np.ndarray] = []
    if buffer.persistent and not always:
        return kept
    flush = buffer.flush
    copied = [0]  # pending equity rows already kept (a deferring buffer keeps rows pending)

    def flush_keeping_equity() -> int:
        rows = buffer.pending["equity"]
        start = copied[0] if copied[0] <= len(rows) else 0
        if len(rows) > start:  # (ts us, equity): two columns, not an array of row tuples
            new = rows[start:] if start else rows
            ts = np.fromiter((r[0] for r in new), dtype=np.int64, count=len(new))
            values = np.fromiter((r[2] for r in new), dtype=np.float64, count=len(new))
            kept.append((ts, values))
        written = flush()
        copied[0] = len(buffer.pending["equity"])  # 0 once the rows left the buffer
        return written

    buffer.flush = flush_keeping_equity
    return kept


@dataclass(frozen=True)
class Equity:
    """The run's equity per clock step as two arrays: ``ts`` (epoch us, int64) and ``equity``.

    ``len()`` and ``equity["ts"]`` / ``equity["equity"]`` read like the DataFrame it replaces
    for the statistics and the daily file; ``frame()`` builds the DataFrame the plots draw
    (building it for every sweep job cost ~1 ms, most of the frame's life).
    """

    ts: np.ndarray
    equity: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in ("ts", "equity"):
            raise KeyError(column)
        return self.ts if column == "ts" else self.equity

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"ts": self.ts, "equity": self.equity})


def equity_frame(buffer: Any, kept: list[tuple[np.ndarray, np.ndarray]]) -> Equity:
    """Return the run's equity per clock step: ``ts`` (epoch us, int64) and ``equity``."""
    if buffer.persistent and buffer.con is not None and not kept:
        got = buffer.con.execute(
            "SELECT epoch_us(ts) AS ts, equity FROM equity ORDER BY ts"
        ).fetchnumpy()
        return Equity(got["ts"].astype(np.int64), np.asarray(got["equity"], dtype=np.float64))
    ts = np.concatenate([k[0] for k in kept]) if kept else np.empty(0, dtype=np.int64)
    values = np.concatenate([k[1] for k in kept]) if kept else np.empty(0)
    return Equity(np.asarray(ts, dtype=np.int64), np.asarray(values, dtype=np.float64))


def write_equity_daily(path: Any, equity: pd.DataFrame) -> None:
    """Write the last equity of each day (``day,equity``): the sweep's per-period returns."""
    import os

    from components.results.stats import day_returns

    if not len(equity):
        return
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    ends, values, _ = day_returns(
        np.asarray(equity["ts"], dtype=np.int64), np.asarray(equity["equity"], dtype=np.float64)
    )
    # Arrow's CSV writer: each value in its shortest text that reads back as the same double
    # (the day's figure exactly, as %.17g was; ~4x cheaper than formatting it in Python), a NaN
    # as an empty field, the header written here (Arrow quotes its own)
    table = pa.table(
        {"day": _day_array(ends), "equity": pa.array(np.asarray(values), from_pandas=True)}
    )
    sink = pa.BufferOutputStream()
    sink.write(b"day,equity\n")
    pa_csv.write_csv(table, sink, _csv_options())
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(sink.getvalue().to_pybytes())
    os.replace(tmp, path)


@functools.cache
def _csv_options() -> Any:
    """Arrow's CSV options for ``write_equity_daily``: no header (written there), no quotes."""
    import pyarrow.csv as pa_csv

    return pa_csv.WriteOptions(include_header=False, quoting_style="none")


def max_drawdown_pct(values: np.ndarray) -> float:
    """Return ``float((1 - s / s.cummax()).max() * 100)`` of the equity ``s`` (0.0 when empty).

    The same divisions on the arrays, NaN skipped as pandas skips it (~0.5 ms a job less).
    """
    if not len(values):
        return 0.0
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = 1 - values / np.fmax.accumulate(values)
    drawdown = drawdown[~np.isnan(drawdown)]
    return float(drawdown.max() * 100) if len(drawdown) else float("nan")


_DAY_TEXTS: dict[bytes, Any] = {}  # the last days written: a sweep's jobs share them


def _day_array(ends: Any) -> Any:
    """Return ``YYYY-MM-DD`` of each day end (epoch us) as an Arrow string array; the jobs of a
    sweep reuse one."""
    import pyarrow as pa

    ends = np.asarray(ends, dtype=np.int64)
    key = ends.tobytes()
    texts = _DAY_TEXTS.get(key)
    if texts is None:
        days = ends.astype("datetime64[us]").astype("datetime64[D]")
        texts = pa.array(days.astype(str).tolist(), type=pa.string())
        _DAY_TEXTS.clear()
        _DAY_TEXTS[key] = texts
    return texts


def warmup_bars(strategy: Any) -> int:
    """Return W, the bar whose close buy & hold buys at (backtesting.py's first trading bar).

    Strategies on the strategy API report it after the run (``Strategy.warmup_bars``: the largest
    first-defined bar index over their indicators); one that does not starts at bar 0.
    """
    declared = getattr(strategy, "warmup_bars", None)
    return int(declared) if declared is not None else 0


@dataclass
class Closes:
    """Closes of the run's symbols over the run's clock (for buy & hold lines and price charts)."""

    symbols: tuple[str, ...]
    sym: np.ndarray  # index into symbols
    ts: np.ndarray  # epoch us
    close: np.ndarray


def read_closes(con: Any, universe: Universe, last_us: int) -> Closes:
    """Return every close of the universe's symbols in its window up to ``last_us`` inclusive."""
    got = con.execute(
        "WITH u AS (SELECT unnest($symbols) AS symbol, generate_subscripts($symbols, 1) - 1 AS sym) "
        "SELECT u.sym, epoch_us(ts) AS ts, close FROM bars JOIN u USING (symbol) "
        f"WHERE {time_filter(universe)} AND ts <= make_timestamptz($last_us) ORDER BY u.sym, ts",
        _params(universe, last_us),
    ).fetchnumpy()
    return Closes(
        universe.symbols, got["sym"].astype(np.int64), got["ts"].astype(np.int64), got["close"]
    )


def buy_hold_anchors(closes: Closes, warmup: int) -> dict[str, tuple[float, float]]:
    """Return per symbol (close at its bar ``warmup``, its last close)."""
    out = {}
    starts = np.searchsorted(closes.sym, np.arange(len(closes.symbols) + 1))
    for k, name in enumerate(closes.symbols):
        lo, hi = int(starts[k]), int(starts[k + 1])
        if hi - lo > warmup:
            out[name] = (float(closes.close[lo + warmup]), float(closes.close[hi - 1]))
    return out


def buy_hold_curve(closes: Closes, clock: np.ndarray, cash: float, warmup: int) -> np.ndarray:
    """Return the equity of buy & hold on ``clock``: cash times the equal-weight mean growth.

    Each symbol is bought at its bar ``warmup`` close; before that (and before its first bar) its
    growth is 1.
    """
    starts = np.searchsorted(closes.sym, np.arange(len(closes.symbols) + 1))
    growth = []
    for k in range(len(closes.symbols)):
        lo, hi = int(starts[k]), int(starts[k + 1])
        if hi - lo <= warmup:
            continue
        ts, close = closes.ts[lo + warmup : hi], closes.close[lo + warmup : hi]
        idx = np.searchsorted(ts, clock, side="right") - 1
        growth.append(np.where(idx >= 0, close[idx.clip(0)] / close[0], 1.0))
    if not growth:
        return np.full(len(clock), cash)
    return cash * np.mean(growth, axis=0)


def run_stats(
    equity: pd.DataFrame,
    trades: list[Any],
    anchors: dict[str, tuple[float, float]],
    *,
    cash: float,
    open_positions: list[dict[str, Any]],
    total_fees: float | None = None,
) -> dict[str, Any]:
    """Return ``compute_stats`` of the run (the ``stats`` object of ``summary.json``)."""
    records = not trades or hasattr(trades[0], "_fields")  # else the pre-issue-10 tuples
    return compute_stats(
        equity,
        trade_columns(trades) if records else trades_frame(trades),
        first_last_close=anchors,
        cash=cash,
        total_fees=total_fees,
        open_positions=open_positions,
    )


def anchors_from_db(con: Any, universe: Universe, last_us: int, warmup: int) -> dict:
    """Return buy & hold anchors with one aggregate query (no closes kept in memory).

    The close at bar ``warmup`` is the last of the ``warmup + 1`` earliest closes (``min_by``
    with a count keeps a heap of that size per symbol; NULL when the symbol has fewer bars):
    ~20 ms for 1M bars, where numbering every bar with a window function took ~160 ms.
    """
    rows = con.execute(
        "SELECT symbol, min_by(close, ts, $n)[$n], arg_max(close, ts) FROM bars "
        f"WHERE {window_filter(universe)} "
        "AND ts <= make_timestamptz($last_us) GROUP BY symbol",
        {**_params(universe, last_us), "n": warmup + 1},
    ).fetchall()
    return {sym: (float(first), float(last)) for sym, first, last in rows if first is not None}


def _params(universe: Universe, last_us: int) -> dict[str, Any]:
    params: dict[str, Any] = {"symbols": list(universe.symbols), "last_us": int(last_us)}
    if universe.start_us is not None:
        params["start_us"] = universe.start_us
    if universe.end_us is not None:
        params["end_us"] = universe.end_us
    return params
