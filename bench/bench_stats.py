"""What the statistics and report.html cost on the 1M-bar bench run (issue 12 budget: stats < 10 %).

    python -m bench.bench_stats            # about a minute on 2 cores; writes bench/results/stats.json

Each row is a fresh ``python -m runner`` process on the bench DB (10 symbols x 100k minute bars,
sma_cross, persistence on). ``stats_seconds`` is timed inside the run around everything the
statistics need after the loop (the empyrical/scipy import on first use, the equity read-back,
the buy & hold anchors, ``compute_stats``, ``equity_daily.csv``); the report's share adds
``plot_data_seconds`` (reading every close for the buy & hold line and price charts) to
``html_seconds`` (building and writing ``report.html``). Shares are of the same process's wall
time. The equity read-back from results.duckdb predates issue 12 (max drawdown, equity.png) and
is not counted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import data

RESULTS = Path(__file__).resolve().parent / "results" / "stats.json"


def run_once(db: Path, html: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_stats_") as tmp:
        run_dir = Path(tmp) / "run"
        args = [
            "+experiment=backtest",
            f"db.path={db}",
            f"hydra.run.dir={run_dir}",
            "run.plot=false",
            f"run.html={str(html).lower()}",
            "run.progress=off",
            "run.log_level=WARNING",
        ]
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "runner", *args],
            cwd=data.REPO,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if proc.returncode:
            raise SystemExit(f"bench_stats: run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        summary = json.loads((run_dir / "summary.json").read_text())
        page = run_dir / "report.html"
        m = summary["metrics"]
        return {
            "process_seconds": round(wall, 3),
            "loop_seconds": m["wall_seconds"],
            "bars": m["bars"],
            "n_trades": summary["n_trades"],
            "stats_seconds": m["stats_seconds"],
            "stats_share": round(m["stats_seconds"] / wall, 4),
            "plot_data_seconds": m["plot_data_seconds"],
            "html_seconds": m.get("html_seconds"),
            "html_share": round((m["html_seconds"] + m["plot_data_seconds"]) / wall, 4)
            if html
            else None,
            "report_html_bytes": page.stat().st_size if page.exists() else None,
        }


def main(argv: list[str] | None = None) -> int:
    data.ensure_bytecode()  # as a user's Python would have it (bench/data.py)
    parser = argparse.ArgumentParser(prog="python -m bench.bench_stats")
    parser.add_argument("--repeat", type=int, default=2, help="runs per row (fastest kept)")
    args = parser.parse_args(argv)
    db = data.ensure_db()
    rows = {}
    for html in (False, True):
        runs = [run_once(db, html) for _ in range(max(1, args.repeat))]
        rows["report.html on" if html else "report.html off"] = min(
            runs, key=lambda r: r["process_seconds"]
        )
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    print(
        f"{'run':<18} {'process s':>9} {'stats s':>8} {'stats %':>8} {'html s':>7} {'html %':>7} {'page MB':>8}"
    )
    for name, r in rows.items():
        page = f"{r['report_html_bytes'] / 1e6:.2f}" if r["report_html_bytes"] else "-"
        html_s = (
            f"{r['html_seconds'] + r['plot_data_seconds']:.3f}"
            if r["html_seconds"] is not None
            else "-"
        )
        html_pct = f"{r['html_share'] * 100:.1f}" if r["html_share"] is not None else "-"
        print(
            f"{name:<18} {r['process_seconds']:>9.2f} {r['stats_seconds']:>8.3f} "
            f"{r['stats_share'] * 100:>8.1f} {html_s:>7} {html_pct:>7} {page:>8}"
        )
    print(
        f"bars {rows['report.html off']['bars']:,}, trades {rows['report.html off']['n_trades']:,}; -> {RESULTS}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
