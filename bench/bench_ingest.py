"""Benchmark the write side: OhlcvBars validation and ingest throughput on 1M synthetic bars.

    python -m bench.bench_ingest [--symbols 10] [--bars 100000] [--repeat 3]

Budgets (DESIGN section 8): validation <= 0.5 s per 1M rows; writer >= 400k rows/s. Writes a
table to stdout and ``bench/results/ingest.json``. Timings are wall-clock; the first validation
in a process also pays pandera's lazy imports, so it is reported separately ("cold").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pandera
from loguru import logger

from components.data.schemas import OhlcvBars, validate_or_raise
from producers.demo import generate_bars
from producers.ingest import ingest
from producers.store import write_bars

RESULTS = Path(__file__).resolve().parent / "results" / "ingest.json"
VALIDATION_BUDGET_S_PER_1M = 0.5
WRITER_BUDGET_ROWS_PER_S = 400_000


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_validation(bars: pd.DataFrame, repeat: int) -> dict[str, float]:
    """Return cold (first call in the process) and warm validation times, scaled to 1M rows."""
    scale = 1_000_000 / len(bars)
    cold = timed(lambda: validate_or_raise(OhlcvBars, bars.copy(), "bench")) * scale
    warm = [
        timed(lambda: validate_or_raise(OhlcvBars, bars.copy(), "bench")) * scale
        for _ in range(repeat)
    ]
    return {
        "cold_s_per_1m": cold,
        "warm_median_s_per_1m": statistics.median(warm),
        "warm_min_s_per_1m": min(warm),
    }


def bench_writes(bars: pd.DataFrame, workdir: Path, repeat: int) -> dict[str, float]:
    """Return rows/s for write_bars into a new DB, an append into a filled DB, and CSV ingest."""
    fresh, append, csv_ingest = [], [], []
    later = bars.assign(
        ts=bars["ts"] + (bars["ts"].max() - bars["ts"].min() + pd.Timedelta(minutes=1))
    )
    csv_path = workdir / "bars.csv"
    bars.assign(ts=bars["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S")).to_csv(csv_path, index=False)
    for k in range(repeat):
        db = workdir / f"fresh{k}.duckdb"
        fresh.append(len(bars) / timed(lambda db=db: write_bars(db, bars, "bench")))
        append.append(len(bars) / timed(lambda db=db: write_bars(db, later, "bench later")))
        csv_db = workdir / f"csv{k}.duckdb"
        csv_ingest.append(
            len(bars) / timed(lambda csv_db=csv_db: ingest(str(csv_path), str(csv_db)))
        )
    return {
        "write_bars_new_db_rows_per_s": statistics.median(fresh),
        "write_bars_append_rows_per_s": statistics.median(append),
        "csv_ingest_rows_per_s": statistics.median(csv_ingest),
        "db_bytes_per_1m_rows": os.path.getsize(workdir / "fresh0.duckdb")
        / 2
        * 1_000_000
        / len(bars),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--bars", type=int, default=100_000, help="minute bars per symbol")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logger.remove()  # publish's debug lines would interleave with the table

    generate_s = timed(
        lambda: generate_bars(
            7, n_symbols=args.symbols, n_bars=args.bars, stagger=0.0, gap_rate=0.0
        )
    )
    bars = generate_bars(7, n_symbols=args.symbols, n_bars=args.bars, stagger=0.0, gap_rate=0.0)
    validation = bench_validation(bars, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        writes = bench_writes(bars, Path(tmp), args.repeat)

    result = {
        "rows": len(bars),
        "symbols": args.symbols,
        "repeat": args.repeat,
        "generate_bars_s": generate_s,
        **validation,
        **writes,
        "budgets": {
            "validation_s_per_1m": VALIDATION_BUDGET_S_PER_1M,
            "writer_rows_per_s": WRITER_BUDGET_ROWS_PER_S,
        },
        "pass": {
            "validation": validation["warm_median_s_per_1m"] <= VALIDATION_BUDGET_S_PER_1M,
            "writer": writes["write_bars_new_db_rows_per_s"] >= WRITER_BUDGET_ROWS_PER_S,
            "csv_ingest": writes["csv_ingest_rows_per_s"] >= WRITER_BUDGET_ROWS_PER_S,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m_at_end": round(
                os.getloadavg()[0], 2
            ),  # other work on the box skews timings
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "pandas": pd.__version__,
            "pandera": pandera.__version__,
        },
    }
    print_table(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


def print_table(r: dict[str, Any]) -> None:
    ok = {True: "ok", False: "MISS"}
    rows = [
        ("generate_bars (1M rows)", f"{r['generate_bars_s']:.3f} s", ""),
        (
            "validation, cold first call",
            f"{r['cold_s_per_1m']:.3f} s / 1M",
            "(includes lazy imports)",
        ),
        (
            "validation, warm median",
            f"{r['warm_median_s_per_1m']:.3f} s / 1M",
            f"<= 0.5 s  {ok[r['pass']['validation']]}",
        ),
        (
            "write_bars into new DB",
            f"{r['write_bars_new_db_rows_per_s']:,.0f} rows/s",
            f">= 400k   {ok[r['pass']['writer']]}",
        ),
        (
            "write_bars append to 1M",
            f"{r['write_bars_append_rows_per_s']:,.0f} rows/s",
            "(copies the live file)",
        ),
        (
            "CSV ingest end to end",
            f"{r['csv_ingest_rows_per_s']:,.0f} rows/s",
            f">= 400k   {ok[r['pass']['csv_ingest']]}",
        ),
        ("DB size", f"{r['db_bytes_per_1m_rows'] / 1e6:.1f} MB / 1M rows", ""),
    ]
    print(
        f"bench_ingest: {r['rows']:,} bars ({r['symbols']} symbols), median of {r['repeat']}, {r['machine']['cpus']} CPUs"
    )
    for name, value, note in rows:
        print(f"  {name:<28} {value:>22}  {note}")


if __name__ == "__main__":
    main()
