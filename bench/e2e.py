"""End-to-end runs: ``python -m runner`` in a fresh subprocess per measurement (clean peak RSS)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data import REPO


@dataclass(frozen=True)
class RunSpec:
    name: str
    overrides: tuple[str, ...]
    window_steps: int | None = None  # None: the whole history


def run_runner(db: Path, spec: RunSpec, end: str | None) -> dict[str, Any]:
    """Run one backtest in a subprocess; return its summary.json plus the process wall time."""
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        run_dir = Path(tmp) / "run"
        args = [
            "+experiment=backtest",
            f"db.path={db}",
            f"hydra.run.dir={run_dir}",
            "run.plot=false",
            "run.html=false",  # report.html is timed by bench.bench_stats
            "run.progress=off",
            "run.log_level=WARNING",
            *spec.overrides,
            *([f"end={end}"] if end else []),
        ]
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "runner", *args], cwd=REPO, capture_output=True, text=True
        )
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(
                f"bench: run {spec.name} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
            )
        summary = json.loads((run_dir / "summary.json").read_text())
    summary["process_seconds"] = round(wall, 3)
    return summary


def best_of(db: Path, spec: RunSpec, end: str | None, repeat: int) -> dict[str, Any]:
    """Run ``repeat`` times; return the fastest summary with every rate recorded."""
    runs = [run_runner(db, spec, end) for _ in range(max(1, repeat))]
    best = max(runs, key=lambda s: s["metrics"]["bars_per_second"])
    best["all_bars_per_second"] = [s["metrics"]["bars_per_second"] for s in runs]
    return best


def figures(summary: dict[str, Any], chunk_size: int | None = None) -> dict[str, Any]:
    """Return the figures the table and JSON need from one run's summary."""
    m = summary["metrics"]
    lookups = m["cache_hits"] + m["cache_misses"]
    out = {
        "bars": m["bars"],
        "clock_steps": m["clock_steps"],
        "loop_seconds": m["wall_seconds"],
        "bars_per_second": m["bars_per_second"],
        "peak_rss_mb": m.get("peak_rss_mb"),
        "market_db_queries": m["market_db_queries"],
        "analytics_queries": m["analytics_queries"],
        "cache_hits": m["cache_hits"],
        "cache_hit_rate": round(m["cache_hits"] / lookups, 6) if lookups else None,
        "n_trades": summary["n_trades"],
        "total_pnl": summary["total_pnl"],
        "digest": summary["digest"],
        "process_seconds": summary["process_seconds"],
        "all_bars_per_second": summary.get("all_bars_per_second"),
    }
    if chunk_size:
        out["expected_market_queries"] = math.ceil(m["clock_steps"] / chunk_size)
    return out
