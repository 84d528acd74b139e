"""Component benchmarks in this process: WriteBuffer, validation, cached snapshot lookups."""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from components.analytics.providers import (
    SNAPSHOT_SELECT,
    CachedAnalyticsProvider,
    DirectAnalyticsProvider,
    snapshot_satisfies_contract,
)
from components.data.schemas import AnalyticsSnapshot, OhlcvBars, validate_or_raise
from components.execution.write_buffer import WriteBuffer
from components.market.base import BAR_SELECT, chunk_from_columns, chunk_satisfies_contract


def best_seconds(fn: Callable[[], Any], repeat: int) -> float:
    """Return the fastest of ``repeat`` timed calls of ``fn``."""
    times = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _writer_rows(n: int) -> list[tuple[str, tuple]]:
    """Rows shaped like a run's: 9 equity rows to 1 insight row (insights are also digested)."""
    base = 1_704_067_200_000_000
    rows: list[tuple[str, tuple]] = []
    for i in range(n):
        ts = base + i * 60_000_000
        if i % 10:
            rows.append(("equity", (ts, 1_000_000.0 - i, 1_000_000.0 + i * 0.5)))
        else:
            rows.append(
                (
                    "insights",
                    (i, ts, "SYM03", "sma_cross", "long", "sma_up_cross", 101.25 + i, 100.75),
                )
            )
    return rows


def bench_writer(
    batch_sizes: tuple[int, ...] = (500, 5_000, 50_000), n_rows: int = 300_000
) -> dict[int, float]:
    """Return WriteBuffer rows/s (add + flush into a fresh results DB) per batch size."""
    rows = _writer_rows(n_rows)
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench_writer_") as tmp:
        for batch in batch_sizes:
            buffer = WriteBuffer(batch)
            buffer.open(Path(tmp) / f"results_{batch}.duckdb")
            add = buffer.add
            started = time.perf_counter()
            for table, row in rows:
                add(table, row)
            buffer.flush()
            out[batch] = n_rows / (time.perf_counter() - started)
            buffer.close()
    return out


def bench_validation(db: Path, repeat: int = 2) -> dict[str, float]:
    """Return seconds per 1M rows: pandera and the numpy fast path, for bars and for snapshots."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        frame = con.execute(
            "SELECT symbol, ts, open, high, low, close, volume FROM bars ORDER BY ts, symbol"
        ).df()
        names = sorted(frame["symbol"].unique().tolist())
        cols = con.execute(f"{BAR_SELECT} ORDER BY ts, symbol", {"symbols": names}).fetchnumpy()
        snapshots = con.execute(f"{SNAPSHOT_SELECT} ORDER BY snapshot_ts, symbol").fetchnumpy()
        snap_frame = con.execute(
            "SELECT snapshot_ts, symbol, trailing_return, volatility, return_rank "
            "FROM analytics_snapshots"
        ).df()
    finally:
        con.close()
    chunk = chunk_from_columns(cols)
    per_snapshot = _split_snapshots(snapshots)
    big_snapshots = _tile_snapshots(snap_frame, 1_000_000)
    validate_or_raise(
        OhlcvBars, frame.head(1000), "bench warm-up"
    )  # pandera's lazy imports, not timed
    validate_or_raise(AnalyticsSnapshot, snap_frame.head(100), "bench warm-up")
    bars_scale, snap_scale = 1e6 / len(frame), 1e6 / len(snap_frame)
    snapshot_seconds = best_seconds(
        lambda: all(snapshot_satisfies_contract(c) for c in per_snapshot), 3
    )
    return {
        "bars_pandera_s_per_1m": best_seconds(
            lambda: validate_or_raise(OhlcvBars, frame, "bench"), repeat
        )
        * bars_scale,
        "bars_fast_path_s_per_1m": best_seconds(
            lambda: chunk_satisfies_contract(chunk, len(names)), 3
        )
        * bars_scale,
        "snapshots_pandera_s_per_1m": best_seconds(
            lambda: validate_or_raise(AnalyticsSnapshot, big_snapshots, "bench"), repeat
        )
        * 1e6
        / len(big_snapshots),
        "snapshots_fast_path_s_per_1m": snapshot_seconds * snap_scale,
        "snapshot_fast_path_us_per_snapshot": snapshot_seconds / len(per_snapshot) * 1e6,
        "bars_rows": len(frame),
        "snapshot_rows": len(snap_frame),
        "snapshots": len(per_snapshot),
        "symbols_per_snapshot": len(snap_frame) / len(per_snapshot),
    }


def _tile_snapshots(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    """Repeat the snapshot table with later snapshot times until it holds at least ``rows`` rows."""
    copies = -(-rows // len(frame))
    span = frame["snapshot_ts"].max() - frame["snapshot_ts"].min() + pd.Timedelta(hours=1)
    return pd.concat(
        [frame.assign(snapshot_ts=frame["snapshot_ts"] + k * span) for k in range(copies)],
        ignore_index=True,
    )


def _split_snapshots(cols: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Split snapshot columns into one dict per snapshot, as the providers validate them."""
    stamps = cols["snapshot_us"]
    cuts = np.flatnonzero(np.diff(stamps)) + 1
    bounds = np.concatenate(([0], cuts, [len(stamps)]))
    return [{k: v[lo:hi] for k, v in cols.items()} for lo, hi in itertools.pairwise(bounds)]


def bench_lookups(db: Path, n_hits: int = 1_000_000, n_direct: int = 200) -> dict[str, float]:
    """Return microseconds per cached hit and per direct (query) lookup of the as-of snapshot."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        first, second = (
            int(t)
            for (t,) in con.execute(
                "SELECT DISTINCT epoch_us(snapshot_ts) AS t FROM analytics_snapshots ORDER BY t LIMIT 2"
            ).fetchall()
        )
        cached = CachedAnalyticsProvider()
        cached.open(con)
        cached.at(first)  # miss: loads the snapshot
        stamps = np.linspace(first, second - 1, num=1000, dtype=np.int64).tolist() * (
            n_hits // 1000
        )
        at = cached.at
        started = time.perf_counter()
        for ts in stamps:
            at(ts)
        hit_us = (time.perf_counter() - started) / len(stamps) * 1e6
        assert cached.hits >= len(stamps)
        direct = DirectAnalyticsProvider()
        direct.open(con)
        started = time.perf_counter()
        for ts in stamps[:n_direct]:
            direct.at(ts)
        direct_us = (time.perf_counter() - started) / n_direct * 1e6
    finally:
        con.close()
    return {"cached_hit_us": hit_us, "direct_query_us": direct_us}
