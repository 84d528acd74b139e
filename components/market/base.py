"""The market seam: a ``BarChunk`` of columnar bars and the ``MarketProvider`` protocol (STYLE P5)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import duckdb
import numpy as np
import pandas as pd

from components.errors import DataValidationError


@dataclass(frozen=True)
class Universe:
    """The selected symbols (sorted) and the [start, end) window, in epoch microseconds (UTC)."""

    symbols: tuple[str, ...]
    start_us: int | None = None
    end_us: int | None = None
    n_steps: int | None = None  # distinct timestamps in the window, when the planner counted them


@dataclass
class BarChunk:
    """Bars of consecutive clock steps, ordered by ts then symbol.

    ``sym`` indexes ``Universe.symbols``; ``bounds[k]:bounds[k+1]`` are the rows of clock step k,
    whose timestamp is ``step_ts[k]`` (epoch microseconds, UTC).
    """

    ts: np.ndarray
    sym: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    step_ts: np.ndarray
    bounds: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def n_steps(self) -> int:
        return len(self.step_ts)

    def to_frame(self, symbols: tuple[str, ...]) -> pd.DataFrame:
        """Return the chunk as an ``OhlcvBars`` frame (for validation, tests and reports)."""
        return pd.DataFrame(
            {
                "symbol": np.asarray(symbols, dtype=object)[self.sym]
                if len(self.sym)
                else np.array([], dtype=object),
                "ts": pd.to_datetime(self.ts, unit="us", utc=True),
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume,
            }
        )


def chunk_from_columns(cols: dict[str, np.ndarray]) -> BarChunk:
    """Build a ``BarChunk`` from fetched columns ``ts_us, sym, open, high, low, close, volume``."""
    ts = np.ascontiguousarray(cols["ts_us"], dtype=np.int64)
    if len(ts):
        starts = np.flatnonzero(np.diff(ts)) + 1
        bounds = np.concatenate(([0], starts, [len(ts)])).astype(np.int64)
        step_ts = ts[bounds[:-1]]
    else:
        bounds = np.zeros(1, dtype=np.int64)
        step_ts = ts[:0]
    return BarChunk(
        ts=ts,
        sym=np.ascontiguousarray(cols["sym"], dtype=np.int64),
        open=np.ascontiguousarray(cols["open"], dtype=np.float64),
        high=np.ascontiguousarray(cols["high"], dtype=np.float64),
        low=np.ascontiguousarray(cols["low"], dtype=np.float64),
        close=np.ascontiguousarray(cols["close"], dtype=np.float64),
        volume=np.ascontiguousarray(cols["volume"], dtype=np.float64),
        step_ts=step_ts,
        bounds=bounds,
    )


def in_step_order(cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return fetched bar columns ordered by (ts, sym): as they are when already so, else sorted.

    The providers' queries carry no ``ORDER BY``: DuckDB's sort of every page cost ~1/3 of the
    fetch (0.05 s of 0.15 s per 1M bars), while a market DB written by our producers (sorted by
    ts, symbol) is scanned in that order already. The check is one pass over two columns; rows
    that come otherwise are sorted here (a stable lexsort), so the chunk is the same either way
    and duplicates stay adjacent for ``validate_chunk`` to report.
    """
    ts, sym = cols["ts_us"], cols["sym"]
    if _in_step_order(ts, sym):
        return cols
    order = np.lexsort((sym, ts))
    return {name: values[order] for name, values in cols.items()}


def _in_step_order(ts: np.ndarray, sym: np.ndarray) -> bool:
    """Return True when rows are in strictly increasing (ts, sym) order (no duplicate bar)."""
    dts = np.diff(ts)
    return bool(np.all((dts > 0) | ((dts == 0) & (np.diff(sym) > 0))))


def chunk_satisfies_contract(chunk: BarChunk, n_symbols: int) -> bool:
    """Return True when every ``OhlcvBars`` rule holds, checked with numpy in one pass.

    pandera costs tens of milliseconds per call whatever the size, which would dominate a loop that
    validates every chunk (every step, for ``direct``). This vectorised check implements the same
    contract; when it fails, pandera runs to produce the row-level report. A property test holds
    the two in agreement.
    """
    o, h, lo, c, v = chunk.open, chunk.high, chunk.low, chunk.close, chunk.volume
    with np.errstate(invalid="ignore"):
        prices_ok = bool(
            np.all(
                np.isfinite(o)
                & np.isfinite(h)
                & np.isfinite(lo)
                & np.isfinite(c)
                & (o > 0)
                & (h > 0)
                & (lo > 0)
                & (c > 0)
            )
        )
        volume_ok = bool(np.all(np.isfinite(v) & (v >= 0)))
        bounds_ok = bool(np.all((h >= np.maximum(np.maximum(o, c), lo)) & (lo <= np.minimum(o, c))))
    sym_ok = bool(np.all((chunk.sym >= 0) & (chunk.sym < n_symbols)))
    order_ok = _in_step_order(chunk.ts, chunk.sym)
    return prices_ok and volume_ok and bounds_ok and sym_ok and order_ok


def validate_chunk(chunk: BarChunk, universe: Universe, source: str) -> None:
    """Validate a chunk against the ``OhlcvBars`` contract before it reaches the loop."""
    if len(chunk) and not chunk_satisfies_contract(chunk, len(universe.symbols)):
        from components.data.schemas import OhlcvBars, validate_or_raise  # pandera: ~0.3 s import

        validate_or_raise(OhlcvBars, chunk.to_frame(universe.symbols), source)
        raise DataValidationError(
            f"{source}: bars are out of (ts, symbol) order or name an unselected symbol; the market DB "
            "is inconsistent. Rebuild it with a producer CLI."
        )


class MarketProvider(Protocol):
    """Serve bars in strict causal order with one clock across symbols."""

    queries: int

    def open(self, con: duckdb.DuckDBPyConnection, universe: Universe) -> None:
        """Bind to a read-only connection; no query yet."""

    def chunks(self) -> Iterator[BarChunk]:
        """Yield chunks of whole clock steps in ascending ts; each step appears exactly once."""


# The universe joins in as a tiny table (symbol -> index); a hash join is ~3x cheaper than calling
# list_position() per row, and it selects the universe's symbols by itself.
BAR_SELECT = (
    "WITH u AS (SELECT unnest($symbols) AS symbol, generate_subscripts($symbols, 1) - 1 AS sym) "
    "SELECT epoch_us(ts) AS ts_us, u.sym, open, high, low, close, volume FROM bars JOIN u USING (symbol)"
)


def time_filter(universe: Universe) -> str:
    """Return the SQL predicate of the [start, end) window alone (symbols come from the join)."""
    clauses = ["TRUE"]
    if universe.start_us is not None:
        clauses.append("ts >= make_timestamptz($start_us)")
    if universe.end_us is not None:
        clauses.append("ts < make_timestamptz($end_us)")
    return " AND ".join(clauses)


def window_filter(universe: Universe) -> str:
    """Return the SQL predicate selecting the universe's symbols and [start, end) window."""
    return f"list_contains($symbols, symbol) AND {time_filter(universe)}"


def window_params(universe: Universe) -> dict[str, object]:
    """Return the parameters that ``window_filter`` refers to."""
    params: dict[str, object] = {"symbols": list(universe.symbols)}
    if universe.start_us is not None:
        params["start_us"] = universe.start_us
    if universe.end_us is not None:
        params["end_us"] = universe.end_us
    return params
