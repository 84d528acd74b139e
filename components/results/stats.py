"""The run's statistics: one pure function of the equity series and the trades (DESIGN section 9).

Every reader (console, ``summary.json``/``.md``, ``report.html``, the sweep table) takes its figures
from :func:`compute_stats`. Formulas are in ``docs/statistics.md``. Where backtesting.py 0.6.6
reports a figure of the same meaning, the definition here is its definition (same run, same
number); Sharpe, Sortino and volatility are empyrical-reloaded's on daily equity returns.
Undefined figures (no trades, no losing trade, fewer than two days) are ``None``, never NaN.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from components.execution.records import record_columns

STAT_KEYS = (
    "start",
    "end",
    "duration_days",
    "exposure_pct",
    "equity_final",
    "equity_peak",
    "return_pct",
    "buy_hold_return_pct",
    "return_ann_pct",
    "volatility_ann_pct",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown_pct",
    "avg_drawdown_pct",
    "max_drawdown_duration_days",
    "avg_drawdown_duration_days",
    "n_trades",
    "win_rate_pct",
    "best_trade_pct",
    "worst_trade_pct",
    "avg_trade_pct",
    "max_trade_duration_days",
    "avg_trade_duration_days",
    "profit_factor",
    "expectancy_pct",
    "sqn",
    "total_fees",
    "turnover",
    "psr",
)
TRADE_COLUMNS = ("symbol", "entry_ts", "entry_price", "exit_ts", "exit_price", "size", "pnl")
DAY_US = 86_400_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def compute_stats(
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    *,
    first_last_close: Mapping[str, tuple[float, float]] | None = None,
    cash: float | None = None,
    periods_per_year: int | None = None,
    total_fees: float | None = None,
    open_positions: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Return the statistics of one run, keyed by ``STAT_KEYS``.

    Parameters
    ----------
    equity
        One row per clock step: ``ts`` (epoch microseconds or datetimes, UTC) and ``equity``.
    trades
        Closed round trips: ``TRADE_COLUMNS`` (timestamps as ``equity.ts``; ``pnl`` net of fees),
        optionally ``fees`` (default 0).
    first_last_close
        Per symbol, the close buy & hold buys at and the last close (``buy_hold_return_pct``).
    cash
        Starting cash, used only when ``equity`` is empty.
    periods_per_year
        Annualisation factor of the daily returns; ``None`` detects it from the calendar
        (252 when weekends hold almost no bars, 365 otherwise; 52 / 12 / 1 for weekly, monthly,
        yearly bars), as backtesting.py does.
    total_fees
        Fees paid in the run (the broker's figure, including an open position's entry fee);
        ``None`` sums ``trades.fees``.
    open_positions
        Positions open at the end (``size``, ``entry_price``): their entry counts in turnover.
        ``trades`` may also be a mapping of those columns to arrays (``trade_columns``).
    """
    ts = _as_us(equity["ts"]) if len(equity) else np.empty(0, dtype=np.int64)
    values = np.asarray(equity["equity"], dtype=np.float64) if len(equity) else np.empty(0)
    frame = _trade_arrays(trades)
    out: dict[str, Any] = dict.fromkeys(STAT_KEYS)
    out.update(_trade_stats(frame, ts))
    fees = float(np.sum(frame["fees"])) if total_fees is None else float(total_fees)
    out["total_fees"] = fees
    out["buy_hold_return_pct"] = _buy_hold_pct(first_last_close)
    if not len(values):
        out["equity_final"] = out["equity_peak"] = cash
        out["return_pct"] = 0.0 if cash is not None else None
        return {k: _clean(out[k]) for k in STAT_KEYS}
    out.update(_equity_stats(ts, values, periods_per_year))
    out["exposure_pct"] = _exposure_pct(ts, frame)
    notional = float(
        np.sum(np.abs(frame["size"]) * (frame["entry_price"] + frame["exit_price"]))
    ) + sum(abs(float(p["size"])) * float(p["entry_price"]) for p in open_positions)
    out["turnover"] = notional / float(values.mean()) if values.mean() > 0 else None
    return {k: _clean(out[k]) for k in STAT_KEYS}


def trades_frame(rows: list[Any]) -> pd.DataFrame:
    """Return the broker's trade rows as a frame with named columns (NamedTuples or plain tuples).

    Plain tuples are the pre-issue-10 layout ``(seq, symbol, entry_ts, entry_price, exit_ts,
    exit_price, size, pnl)``; NamedTuples bring their own field names (``fees`` among them).
    """
    if rows and hasattr(rows[0], "_fields"):
        return pd.DataFrame(rows, columns=list(rows[0]._fields))
    columns = ["seq", *TRADE_COLUMNS]
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def trade_columns(rows: list[Any]) -> dict[str, np.ndarray]:
    """Return the broker's trade records (NamedTuples) as the columns ``compute_stats`` reads.

    The same values as ``trades_frame`` without building a frame (~0.5 ms a run less).
    """
    if not rows:
        return {
            col: np.empty(0, np.int64 if col.endswith("_ts") else np.float64)
            for col in ("entry_ts", "exit_ts", "entry_price", "exit_price", "size", "pnl", "fees")
        }
    by_name = record_columns(rows)
    columns: dict[str, np.ndarray] = {}
    for col in ("entry_ts", "exit_ts"):
        columns[col] = np.array(by_name[col], dtype=np.int64)
    for col in ("entry_price", "exit_price", "size", "pnl", "fees"):
        if col in by_name:
            columns[col] = np.array(by_name[col], dtype=np.float64)
    return columns


def day_returns(
    ts_us: np.ndarray, values: np.ndarray, periods_per_year: int | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (period end, last equity of each period, annualisation) for the equity series.

    Days are UTC calendar days (backtesting.py's ``resample('D').last()``); weekly, monthly and
    yearly bars resample to weeks, month ends and year ends instead.
    """
    freq_days = _period_us(ts_us) // DAY_US if len(ts_us) > 1 else 0
    weekday = (ts_us // DAY_US + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
    weekends = float(np.mean(weekday >= 5)) > 2 / 7 * 0.6 if len(ts_us) else False
    detected = {7: 52, 31: 12, 365: 1}.get(int(freq_days), 365 if weekends else 252)
    factor = periods_per_year or detected
    rule = {7: "W", 31: "ME", 365: "YE"}.get(int(freq_days))
    if rule is None:
        day = ts_us // DAY_US
        last = np.r_[np.flatnonzero(np.diff(day)), len(day) - 1] if len(day) else day
        return day[last] * DAY_US, values[last], factor
    series = pd.Series(values, index=pd.to_datetime(ts_us, unit="us", utc=True))
    sampled = series.resample(rule).last().dropna()
    return _as_us(pd.Series(sampled.index)), sampled.to_numpy(), factor


def ratios(returns: np.ndarray, factor: int) -> tuple[float, float, float]:
    """Return (annual volatility, Sharpe, Sortino) of periodic ``returns``, risk-free rate 0.

    These are empyrical-reloaded 0.7.1's ``annual_volatility``, ``sharpe_ratio`` and
    ``sortino_ratio`` (required return 0) line for line; the tests hold them equal to the library
    on real runs. The run does not import empyrical itself: it pulls in scipy.stats and
    scipy.optimize, 0.4-1.5 s per process, which alone would break the statistics' budget of
    10 % of a 1M-bar run (docs/statistics.md).
    """
    if len(returns) < 2:
        return math.nan, math.nan, math.nan
    root = math.sqrt(factor)
    mean, std = float(np.nanmean(returns)), float(np.nanstd(returns, ddof=1))
    downside = math.sqrt(float(np.nanmean(np.clip(returns, -np.inf, 0) ** 2))) * root
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = float(np.divide(mean, std)) * root
        sortino = float(np.divide(mean * factor, downside))
    return std * root, sharpe, sortino


def _equity_stats(ts: np.ndarray, values: np.ndarray, periods_per_year: int | None) -> dict:
    from components.results.overfit import probabilistic_sharpe_ratio, sharpe_moments

    peak = np.maximum.accumulate(values)
    dd = 1 - values / peak
    span_us = int(ts[-1] - ts[0])
    _, day_values, factor = day_returns(ts, values, periods_per_year)
    rets = day_values[1:] / day_values[:-1] - 1 if len(day_values) > 1 else np.empty(0)
    gmean = _geometric_mean(rets) if len(rets) else 0.0
    ann = (1 + gmean) ** factor - 1
    max_dd = float(dd.max())
    dd_dur, dd_peak = _drawdown_periods(ts, dd)
    resolution = _resolution(ts)
    moments = sharpe_moments(rets)
    volatility, sharpe, sortino = ratios(rets, factor)
    return {
        "start": _iso(ts[0]),
        "end": _iso(ts[-1]),
        "duration_days": span_us / DAY_US,
        "equity_final": float(values[-1]),
        "equity_peak": float(values.max()),
        "return_pct": (values[-1] - values[0]) / values[0] * 100,
        "return_ann_pct": ann * 100,
        "volatility_ann_pct": volatility * 100,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": ann / max_dd if max_dd else None,
        "max_drawdown_pct": -max_dd * 100,
        "avg_drawdown_pct": -float(dd_peak.mean()) * 100 if len(dd_peak) else None,
        "max_drawdown_duration_days": _days(dd_dur.max(), resolution) if len(dd_dur) else None,
        "avg_drawdown_duration_days": _days(_mean_us(dd_dur), resolution) if len(dd_dur) else None,
        "psr": probabilistic_sharpe_ratio(*moments) if moments is not None else None,
    }


def _trade_stats(frame: dict[str, np.ndarray], ts: np.ndarray) -> dict[str, Any]:
    n = len(frame["pnl"])
    out: dict[str, Any] = {"n_trades": n}
    if not n:
        return out
    pnl = frame["pnl"]
    # backtesting.py's Trade.pl_pct: sign * (exit / entry - 1) - fees / (|size| * entry) = pnl / cost
    rets = pnl / (np.abs(frame["size"]) * frame["entry_price"])
    durations = frame["exit_ts"] - frame["entry_ts"]
    resolution = _resolution(ts)
    losses = -rets[rets < 0].sum()
    std = float(np.std(pnl, ddof=1)) if n > 1 else math.nan
    out.update(
        {
            "win_rate_pct": float((pnl > 0).mean()) * 100,
            "best_trade_pct": float(rets.max()) * 100,
            "worst_trade_pct": float(rets.min()) * 100,
            "avg_trade_pct": _geometric_mean(rets) * 100,
            "max_trade_duration_days": _days(int(durations.max()), resolution),
            "avg_trade_duration_days": _days(_mean_us(durations), resolution),
            "profit_factor": float(rets[rets > 0].sum()) / losses if losses else None,
            "expectancy_pct": float(rets.mean()) * 100,
            "sqn": math.sqrt(n) * float(pnl.mean()) / std if std else None,
        }
    )
    return out


def _trade_arrays(trades: pd.DataFrame | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Return the trades' columns as int64 timestamps and float64 figures (``fees`` 0 if absent)."""
    n = len(trades["pnl"]) if isinstance(trades, Mapping) else len(trades)
    columns: dict[str, np.ndarray] = {
        "entry_ts": _as_us(trades["entry_ts"]) if n else np.empty(0, np.int64),
        "exit_ts": _as_us(trades["exit_ts"]) if n else np.empty(0, np.int64),
    }
    for col in ("entry_price", "exit_price", "size", "pnl"):
        columns[col] = np.asarray(trades[col], dtype=np.float64) if n else np.empty(0)
    fees = trades.get("fees", 0.0)
    columns["fees"] = (
        np.broadcast_to(np.asarray(fees, dtype=np.float64), (n,)).copy() if n else np.empty(0)
    )
    return columns


def _exposure_pct(ts: np.ndarray, frame: dict[str, np.ndarray]) -> float:
    """Percent of clock steps inside a closed trade, its entry and exit bars included."""
    if not len(frame["pnl"]):
        return 0.0
    inside = np.zeros(len(ts) + 1, dtype=np.int64)
    np.add.at(inside, np.searchsorted(ts, frame["entry_ts"]), 1)
    np.add.at(inside, np.searchsorted(ts, frame["exit_ts"]) + 1, -1)
    return float((np.cumsum(inside[:-1]) > 0).mean()) * 100


def _drawdown_periods(ts: np.ndarray, dd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each drawdown's duration (us, peak to recovery or to the end) and its depth.

    backtesting.py's ``compute_drawdown_duration_peaks``: a drawdown runs from a bar at the peak
    (dd == 0) to the next one, or to the last bar; one-bar gaps between peaks are none.
    """
    iloc = np.unique(np.r_[np.flatnonzero(dd == 0), len(dd) - 1])
    prev, cur = iloc[:-1], iloc[1:]
    seg_max = np.maximum(np.maximum.reduceat(dd, iloc)[:-1], dd[cur]) if len(cur) else dd[:0]
    keep = cur > prev + 1
    return (ts[cur] - ts[prev])[keep], seg_max[keep]


def _buy_hold_pct(first_last: Mapping[str, tuple[float, float]] | None) -> float | None:
    """Equal-weight mean of each symbol's close-to-close return, in percent.

    Taken in symbol order: the anchors come from a query (single runs) or from cached closes
    (sweep jobs) in different orders, and a mean's last digits depend on the order it adds in.
    """
    anchors = first_last or {}
    pairs = [(f, la) for f, la in (anchors[k] for k in sorted(anchors)) if f and la is not None]
    if not pairs:
        return None
    return float(np.mean([(last - first) / first for first, last in pairs])) * 100


def _geometric_mean(returns: np.ndarray) -> float:
    growth = np.nan_to_num(returns) + 1
    if np.any(growth <= 0):
        return 0.0
    return float(np.exp(np.log(growth).sum() / len(growth)) - 1) if len(growth) else math.nan


def _period_us(ts: np.ndarray) -> int:
    """Median bar spacing over the last 100 clock steps (backtesting.py's ``_data_period``)."""
    return int(np.median(np.diff(ts[-100:]))) if len(ts) > 1 else 0


def _resolution(ts: np.ndarray) -> str:
    period = pd.Timedelta(_period_us(ts), unit="us")
    return period.resolution_string if period.value else "us"


def _days(us: float, resolution: str) -> float:
    """Durations round up to the data's resolution (days on daily bars), as backtesting.py prints."""
    return pd.Timedelta(int(us) * 1000, unit="ns").ceil(resolution) / pd.Timedelta(days=1)


def _mean_us(values: np.ndarray) -> float:
    return float(pd.to_timedelta(values, unit="us").mean().value) / 1000


def _as_us(column: pd.Series | np.ndarray) -> np.ndarray:
    array = np.asarray(column)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    stamps = pd.to_datetime(pd.Series(column), utc=True)
    return stamps.dt.as_unit("us").astype("int64").to_numpy()


def _iso(ts_us: int) -> str:
    return (_EPOCH + dt.timedelta(microseconds=int(ts_us))).isoformat()


def _clean(value: Any) -> Any:
    """Return plain Python numbers; NaN and infinities become ``None`` (valid JSON)."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
