"""Test helpers: build market DBs, compose configs, run CLIs in subprocesses and in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

from components.data.market_db import bump_content_version, ensure_schema

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"


def read_shared_csv(name: str, symbols: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a uniform-format CSV from ../shared/data (naive ts taken as UTC)."""
    df = pd.read_csv(SHARED_DATA / name)
    df["ts"] = pd.to_datetime(df["ts"]).dt.tz_localize("UTC")
    if symbols is not None:
        df = df[df["symbol"].isin(symbols)]
    return df.reset_index(drop=True)


def make_market_db(path: Path, bars: pd.DataFrame, snapshots: pd.DataFrame | None = None) -> Path:
    """Write ``bars`` (and optional analytics ``snapshots``) into a fresh market DB at ``path``."""
    con = duckdb.connect(str(path))
    try:
        ensure_schema(con)
        con.register("_bars", bars[["symbol", "ts", "open", "high", "low", "close", "volume"]])
        con.execute("INSERT INTO bars SELECT * FROM _bars ORDER BY ts, symbol")
        if snapshots is not None:
            con.register("_snaps", snapshots)
            con.execute(
                "INSERT INTO analytics_snapshots SELECT snapshot_ts, symbol, trailing_return, volatility, "
                "return_rank FROM _snaps"
            )
        bump_content_version(con)
    finally:
        con.close()
    return path


def synthetic_bars(
    n_symbols: int = 4, n_steps: int = 600, seed: int = 3, holes: bool = True, freq: str = "min"
) -> pd.DataFrame:
    """Return seeded random-walk bars with unequal histories and holes (valid OHLCV)."""
    rng = np.random.default_rng(seed)
    clock = pd.date_range("2024-03-08", periods=n_steps, freq=freq, tz="UTC")
    frames = []
    for i in range(n_symbols):
        start = int(rng.integers(0, n_steps // 5)) if i else 0
        keep = np.ones(n_steps - start, dtype=bool)
        if holes and i % 2:
            keep &= rng.random(n_steps - start) > 0.07
        ts = clock[start:][keep]
        n = len(ts)
        close = 50 * (i + 1) * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
        open_ = np.concatenate(([close[0]], close[:-1])) * (1 + rng.normal(0, 0.0005, n))
        high = np.maximum(open_, close) * (1 + rng.random(n) * 0.002)
        low = np.minimum(open_, close) * (1 - rng.random(n) * 0.002)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"SYM{i}",
                    "ts": ts,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": rng.integers(0, 1000, n).astype(float),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def synthetic_snapshots(
    bars: pd.DataFrame, every: str = "30min", lookback: int = 20
) -> pd.DataFrame:
    """Compute causal snapshots (trailing return, vol, rank) from ``bars`` at a fixed cadence."""
    out = []
    closes = bars.pivot(index="ts", columns="symbol", values="close").sort_index()
    stamps = closes.index.to_series().groupby(closes.index.floor(every)).max()
    for snap_ts in stamps:
        hist = closes.loc[:snap_ts]
        rows = []
        for sym in hist.columns:
            series = hist[sym].dropna()
            if len(series) <= lookback:
                continue
            ret = series.iloc[-1] / series.iloc[-1 - lookback] - 1
            vol = float(np.log(series.iloc[-lookback - 1 :]).diff().dropna().std())
            rows.append((snap_ts, sym, float(ret), vol))
        rows.sort(key=lambda r: (-r[2], r[1]))
        out.extend((t, s, r, v, float(k + 1)) for k, (t, s, r, v) in enumerate(rows))
    return pd.DataFrame(
        out, columns=["snapshot_ts", "symbol", "trailing_return", "volatility", "return_rank"]
    )


def compose_config(overrides: Sequence[str]) -> DictConfig:
    """Compose the runner config with ``overrides`` (no run)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def run_in_process(
    run_dir: Path, overrides: Sequence[str], engine_hook: Any = None
) -> tuple[int, dict[str, Any]]:
    """Run a backtest in this process (fast) and return (exit code, summary.json or {})."""
    from runner.app import run_backtest

    plot = any(o.startswith("run.plot=") for o in overrides)
    cfg = compose_config(
        ["+experiment=backtest", *([] if plot else ["run.plot=false"]), *overrides]
    )
    with open_dict(cfg):
        cfg.run.progress = "off"
    code = run_backtest(cfg, run_dir, quiet=True, engine_hook=engine_hook)
    summary_path = run_dir / "summary.json"
    return code, json.loads(summary_path.read_text()) if summary_path.exists() else {}


def run_cli(
    module: str,
    args: Sequence[str],
    cwd: Path | None = None,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` in a subprocess and capture its output."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def results_rows(run_dir: Path, table: str) -> list[tuple]:
    """Return every row of a results table, in emission order."""
    from components.execution.write_buffer import open_results

    con = open_results(run_dir)  # results.duckdb, or a multirun job's results/*.parquet
    try:
        order = "seq" if table not in ("equity", "kill_switch_events", "runs") else "1"
        return con.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
    finally:
        con.close()
