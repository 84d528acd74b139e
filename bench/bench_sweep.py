"""``python -m bench.bench_sweep``: parameter sweeps against backtesting.py's ``optimize`` (issue 13).

In one run, on the same machine and the same GOOG daily bars (2,148), for each grid:
- backtesting.py 0.6.6 ``Backtest.optimize`` as its own process (``bench/bt_optimize.py``;
  it spreads the grid over every CPU with multiprocessing);
- our multirun ``python -m runner -m ...`` with the basic launcher, joblib (2 workers) and the
  batched launcher (in-process, and 2 forked workers), each as a whole process (start-up, every
  job's files, the sweep report).
It prints seconds and ms per combination with the ratio to backtesting.py, the per-job breakdown
(loop, job, process share), the peak-RSS spread of the in-process (basic) sweep, and the 1M-bar
headline run as a whole process beside the bare-loop ceiling measured in the same run.

    python -m bench.bench_sweep                 # both grids + the headline, ~5-10 min on 2 cores
    python -m bench.bench_sweep --grids 50      # the 50-combination grid only
    python -m bench.bench_sweep --skip-headline
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import data
from bench.data import REPO

RESULTS = Path(__file__).resolve().parent / "results" / "sweep.json"
GOOG_CSV = REPO.parent / "shared" / "data" / "goog_daily_2004_2013.csv"
GOOG_DB = REPO / "outputs" / "bench" / "goog.duckdb"
# name -> (our sweep overrides, bt_optimize --fast a b, --slow a b step)
GRIDS = {
    "50": (["strategy.fast=range(5,15)", "strategy.slow=20,30,40,50,60"], (5, 15), (20, 61, 10)),
    "1000": (["strategy.fast=range(5,45)", "strategy.slow=range(50,175,5)"], (5, 45), (50, 175, 5)),
}
LAUNCHERS = {
    "basic": [],
    "joblib n_jobs=2": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "batched": ["hydra/launcher=batched"],
    "batched n_jobs=2": ["hydra/launcher=batched", "hydra.launcher.n_jobs=2"],
}
TARGET_RATIO, STRETCH_RATIO, HEADLINE_TARGET, SCALING_TARGET = 1.0, 0.5, 0.25, 1.7
# the CPU-bound sweep of the scaling target: 16 jobs (fast 5..8 x slow 20..50) of the 1M-bar
# workload A (bench/data.py), each ~1.6-2 s of loop, so start-up and report are a small part
CPU_BOUND_GRID = ["strategy.fast=5,6,7,8", "strategy.slow=20,30,40,50"]
CPU_BOUND_BASE = ("market=chunked", "analytics=cached", "buffer=duckdb")
CPU_BOUND_LAUNCHERS = ("basic", "joblib n_jobs=2", "batched n_jobs=2")


def ensure_goog_db() -> Path:
    """Return the GOOG market DB, ingesting ../shared/data once (the producer path users take)."""
    if not GOOG_DB.exists():
        GOOG_DB.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "producers.ingest", f"source={GOOG_CSV}", f"db.path={GOOG_DB}"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SystemExit(f"bench_sweep: ingest failed:\n{proc.stderr[-2000:]}")
    return GOOG_DB


def run_backtesting_py(fast: tuple[int, int], slow: tuple[int, int, int]) -> dict[str, Any]:
    """Run ``bench.bt_optimize`` as a process; return its JSON plus the whole-process seconds."""
    args = ["--fast", *map(str, fast), "--slow", *map(str, slow)]
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bt_optimize", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench_sweep: backtesting.py failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = round(seconds, 3)
    return out


def run_ours(
    db: Path, grid: list[str], launcher: list[str], base: tuple[str, ...] = ("symbols=[GOOG]",)
) -> dict[str, Any]:
    """Run our multirun as a process; return its seconds and the per-job figures of its report."""
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        sweep_dir = Path(tmp) / "sweep"
        args = [
            "-m",
            "+experiment=backtest",
            f"db.path={db}",
            *base,
            "run.log_level=WARNING",
            f"hydra.sweep.dir={sweep_dir}",
            *grid,
            *launcher,
        ]
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "runner", *args], cwd=REPO, capture_output=True, text=True
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(
                f"bench_sweep: sweep failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
            )
        with open(sweep_dir / "sweep_report.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        pids = {
            json.loads((Path(r["run_dir"]) / "sweep_job.json").read_text())["pid"] for r in rows
        }
        records = [json.loads((Path(r["run_dir"]) / "sweep_job.json").read_text()) for r in rows]
    loop = [float(r["wall_seconds"]) for r in rows]
    job = [float(r["job_seconds"]) for r in rows if r["job_seconds"]]
    rss = [float(r["peak_rss_mb"]) for r in rows]
    return {
        "seconds": round(seconds, 3),
        "jobs": len(rows),
        "processes": len(pids),
        "parity_ok": all(r["parity"] == "ok" for r in rows),
        "loop_ms_mean": round(statistics.fmean(loop) * 1000, 2),
        "job_ms_mean": round(statistics.fmean(job) * 1000, 2) if job else None,
        "peak_rss_mb": {"min": min(rss), "max": max(rss), "spread": round(max(rss) - min(rss), 1)},
        "peak_rss_first_last": [rss[0], rss[-1]],
        **rss_figures(rows, records),
    }


def rss_figures(rows: list[dict[str, str]], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-job peak RSS, measured honestly for jobs that share a process.

    The sweep report resets the kernel's high-water mark at each job's start (``clear_refs`` 5),
    so ``peak_rss_mb`` is the highest RSS *during* that job, and ``rss_start_mb`` is the RSS when
    it started. ``peak`` spreads the peaks over all jobs (creep across jobs shows here);
    ``added`` spreads peak - start (what one job adds on top of what the process already held);
    ``warm`` is ``peak`` without each process's first job (imports and caches filled there).
    """
    peaks = [float(r["peak_rss_mb"]) for r in rows]
    starts = [rec.get("rss_start_mb") for rec in records]
    pids = [rec["pid"] for rec in records]
    nums = [rec["num"] for rec in records]
    first = {pid: min(n for n, p in zip(nums, pids, strict=True) if p == pid) for pid in set(pids)}
    warm = [pk for pk, n, p in zip(peaks, nums, pids, strict=True) if n != first[p]]
    added = [pk - st for pk, st in zip(peaks, starts, strict=True) if st is not None]

    def spread(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {
            "min": min(values),
            "max": max(values),
            "spread": round(max(values) - min(values), 1),
        }

    reset = all(rec.get("peak_rss_reset") for rec in records)
    return {
        "rss": {"peak": spread(peaks), "warm": spread(warm), "added": spread(added), "reset": reset}
    }


def run_grid(db: Path, name: str, launchers: list[str] | None = None) -> dict[str, Any]:
    overrides, fast, slow = GRIDS[name]
    print(f"bench_sweep: grid {name}: backtesting.py optimize ...", flush=True)
    load_before, started = os.getloadavg(), time.perf_counter()
    before = run_backtesting_py(fast, slow)
    out: dict[str, Any] = {}
    for launcher, extra in LAUNCHERS.items():
        if launchers is not None and launcher not in launchers:
            continue
        print(f"bench_sweep: grid {name}: runner -m, {launcher} ...", flush=True)
        out[launcher] = run_ours(db, overrides, extra)
    print(f"bench_sweep: grid {name}: backtesting.py optimize again ...", flush=True)
    after = run_backtesting_py(fast, slow)
    # the load of a shared machine drifts: the reference is the mean of a run before and after
    out["backtesting.py"] = {
        "combinations": before["combinations"],
        "process_seconds": round((before["process_seconds"] + after["process_seconds"]) / 2, 3),
        "optimize_seconds": round((before["optimize_seconds"] + after["optimize_seconds"]) / 2, 3),
        "runs": [before, after],
    }
    out["measured"] = _measured(started, load_before)
    out["scaling"] = {
        f"{parallel} / {serial}": round(out[serial]["seconds"] / out[parallel]["seconds"], 2)
        for parallel, serial in (("joblib n_jobs=2", "basic"), ("batched n_jobs=2", "batched"))
        if parallel in out and serial in out
    }
    return out


def _measured(started: float, load_before: tuple[float, float, float]) -> dict[str, Any]:
    """When a section ran, how long it took and the load average around it."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "seconds": round(time.perf_counter() - started, 1),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
    }


# a pure-Python loop of ~1-2 s: what two processes of it gain over one shows what the machine's
# two CPUs deliver at that moment (a shared VM's vCPUs can give far less than 2x)
_SPIN = "s = 0\nfor i in range(15_000_000):\n    s += i\n"


def _spin(n: int) -> float:
    """Return the seconds ``n`` spin processes take when started together."""
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(n)]
    for proc in procs:
        proc.wait()
    return time.perf_counter() - started


def machine_scaling() -> dict[str, Any]:
    """Two spin processes at once against one after the other: the machine's own 2-way scaling.

    A launcher cannot scale better than this; measured before and after the CPU-bound sweeps.
    """
    serial = _spin(1) + _spin(1)
    parallel = _spin(2)
    return {
        "serial_s": round(serial, 3),
        "parallel_s": round(parallel, 3),
        "scaling": round(serial / parallel, 2),
    }


def run_cpu_bound() -> dict[str, Any]:
    """Scaling on a CPU-bound sweep: basic, joblib and batched (2 workers), one run each."""
    db = data.ensure_db()
    load_before, started = os.getloadavg(), time.perf_counter()
    out: dict[str, Any] = {"jobs": 16, "db": str(db.relative_to(REPO))}
    machine = [machine_scaling()]
    for launcher in CPU_BOUND_LAUNCHERS:
        print(f"bench_sweep: CPU-bound sweep (16 x 1M bars): {launcher} ...", flush=True)
        out[launcher] = run_ours(db, CPU_BOUND_GRID, LAUNCHERS[launcher], CPU_BOUND_BASE)
    machine.append(machine_scaling())
    out["machine"] = {
        "runs": machine,
        "scaling": round(statistics.fmean(m["scaling"] for m in machine), 2),
    }
    out["scaling"] = {
        f"{parallel} / basic": round(out["basic"]["seconds"] / out[parallel]["seconds"], 2)
        for parallel in CPU_BOUND_LAUNCHERS[1:]
    }
    out["measured"] = _measured(started, load_before)
    return out


def run_headline() -> dict[str, Any]:
    """The 1M-bar headline as a whole process and its loop, beside the ceiling (same run)."""
    from bench import ceiling, data, e2e

    db = data.ensure_db()
    print("bench_sweep: 1M-bar headline as a whole process, and the ceiling ...", flush=True)
    spec = e2e.RunSpec("headline", ("market=chunked", "analytics=cached", "buffer=duckdb"))
    runs = [e2e.run_runner(db, spec, None) for _ in range(2)]
    best = min(runs, key=lambda s: s["process_seconds"])
    ceil = ceiling.best_ceiling(db, repeat=3)
    ceil_process = ceiling.ceiling_process(db, repeat=3)
    floor = ceiling.import_floor(repeat=5)
    bars = best["metrics"]["bars"]
    process_bps = bars / best["process_seconds"]
    # the whole process the target allows: bars at HEADLINE_TARGET x the loop-only ceiling's rate
    budget = bars / (HEADLINE_TARGET * ceil["bars_per_second"])
    return {
        "bars": bars,
        "process_seconds": best["process_seconds"],
        "all_process_seconds": [r["process_seconds"] for r in runs],
        "loop_seconds": best["metrics"]["wall_seconds"],
        "process_bars_per_second": round(process_bps, 1),
        "loop_bars_per_second": best["metrics"]["bars_per_second"],
        "ceiling_bars_per_second": round(ceil["bars_per_second"], 1),
        "process_ratio": round(process_bps / ceil["bars_per_second"], 3),
        "loop_ratio": round(best["metrics"]["bars_per_second"] / ceil["bars_per_second"], 3),
        "ceiling_process_seconds": ceil_process["process_seconds"],
        "process_ratio_to_ceiling_process": round(
            ceil_process["process_seconds"] / best["process_seconds"], 3
        ),
        "ceiling_fetch_seconds": round(ceil["fetch_seconds"], 3),
        "target_process_seconds": round(budget, 3),
        **floor,
        # what the target leaves for everything after the imports: composing the config, the
        # fetch, the loop, the records, the digest, the results DB and the report
        "left_after_stack_imports_seconds": round(budget - floor["stack_import_seconds"], 3),
    }


def table(results: dict[str, Any]) -> str:
    """Return the sweep benchmark table (Markdown)."""
    lines = [
        "| grid | tool | seconds | ms / combination | ratio to backtesting.py (process / optimize call) |",
        "|---|---|---|---|---|",
    ]
    for grid in results["grids"].values():
        bt = grid["backtesting.py"]
        n = bt["combinations"]
        runs = " / ".join(f"{r['process_seconds']:.2f}" for r in bt.get("runs", []))
        lines.append(
            f"| {n} | backtesting.py 0.6.6 optimize (whole process, mean of {runs} before/after; "
            "optimize call alone) | "
            f"{bt['process_seconds']:.2f} ({bt['optimize_seconds']:.2f}) | "
            f"{bt['process_seconds'] / n * 1000:.1f} ({bt['optimize_seconds'] / n * 1000:.1f}) | 1.00x |"
        )
        for launcher in (name for name in LAUNCHERS if name in grid):
            ours = grid[launcher]
            ratio = ours["seconds"] / bt["process_seconds"]
            ratio_call = ours["seconds"] / bt["optimize_seconds"]
            verdict = "ok" if ratio <= TARGET_RATIO else "MISS"
            lines.append(
                f"| {n} | runner -m, {launcher} (whole process) | {ours['seconds']:.2f} | "
                f"{ours['seconds'] / n * 1000:.1f} | {ratio:.2f}x / {ratio_call:.2f}x {verdict} |"
            )
    lines += [
        "",
        "| grid | launcher | loop ms/job | job ms/job | process ms/job | peak RSS spread, all jobs "
        "(min-max MB) | without each process's first job | peak - start of job | processes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, grid in results["grids"].items():
        for launcher in (name for name in LAUNCHERS if name in grid):
            o = grid[launcher]
            rss = o["rss"]
            lines.append(
                f"| {name} | {launcher} | {o['loop_ms_mean']:.1f} | {o['job_ms_mean'] or 0:.1f} | "
                f"{o['seconds'] / o['jobs'] * 1000:.1f} | {_spread(rss['peak'])} | "
                f"{_spread(rss['warm'])} | {_spread(rss['added'])} | {o['processes']} |"
            )
    lines += [
        "",
        "| grid | scaling (seconds of the first over the second) | x | target |",
        "|---|---|---|---|",
    ]
    for name, grid in results["grids"].items():
        for label, value in grid["scaling"].items():
            lines.append(
                f"| {name} | {label} | {value:.2f} | >= 1.7 {'ok' if value >= 1.7 else 'MISS'} |"
            )
    lines += [
        "",
        "| grid | measured | load average before -> after | bench seconds |",
        "|---|---|---|---|",
    ]
    for name, grid in results["grids"].items():
        m = grid.get("measured") or {}
        lines.append(
            f"| {name} | {m.get('date', '-')} | {m.get('load_avg_before')} -> "
            f"{m.get('load_avg_after')} | {m.get('seconds', '-')} |"
        )
    h = results.get("headline")
    if h:
        lines += [
            "",
            "| 1M-bar headline (sma_cross, chunked+cached, duckdb) | bars/s | / ceiling | target |",
            "|---|---|---|---|",
            f"| loop only (summary.json) | {h['loop_bars_per_second']:,.0f} | {h['loop_ratio']:.3f} | |",
            f"| whole process (`python -m runner ...`, {h['process_seconds']:.2f} s) | "
            f"{h['process_bars_per_second']:,.0f} | {h['process_ratio']:.3f} | >= {HEADLINE_TARGET} "
            f"{'ok' if h['process_ratio'] >= HEADLINE_TARGET else 'MISS'} |",
            f"| ceiling (bench/ceiling.py) | {h['ceiling_bars_per_second']:,.0f} | 1.000 | |",
        ]
        if "ceiling_process_seconds" in h:
            ratio = h["process_ratio_to_ceiling_process"]
            lines.append(
                f"| whole process / the ceiling as a whole process ({h['ceiling_process_seconds']:.2f} s) "
                f"| {h['bars'] / h['ceiling_process_seconds']:,.0f} | {ratio:.3f} | "
                f">= {HEADLINE_TARGET} {'ok' if ratio >= HEADLINE_TARGET else 'MISS'} |"
            )
        if "stack_import_seconds" in h:
            from bench.ceiling import REQUIRED_STACK

            lines += [
                "",
                "| what the headline target leaves (same run) | seconds |",
                "|---|---|",
                f"| whole process at >= {HEADLINE_TARGET}x the loop-only ceiling | "
                f"<= {h['target_process_seconds']:.2f} |",
                f"| interpreter + imports of the required stack ({', '.join(REQUIRED_STACK)}) "
                f"| {h['stack_import_seconds']:.2f} |",
                f"| interpreter + `import runner.entry` (the runner's whole import graph) | "
                f"{h['runner_import_seconds']:.2f} |",
                f"| the ceiling's own fetch of the 1M bars | {h['ceiling_fetch_seconds']:.2f} |",
                f"| left for config, fetch, loop, records, digest, results DB, report | "
                f"{h['left_after_stack_imports_seconds']:.2f} |",
            ]
    c = results.get("cpu_bound")
    if c:
        lines += [
            "",
            f"| CPU-bound sweep ({c['jobs']} jobs x 1M bars, `{' '.join(CPU_BOUND_GRID)}`) | seconds "
            "| loop ms/job | job ms/job | processes |",
            "|---|---|---|---|---|",
        ]
        for launcher in CPU_BOUND_LAUNCHERS:
            o = c[launcher]
            lines.append(
                f"| {launcher} | {o['seconds']:.2f} | {o['loop_ms_mean']:.0f} | "
                f"{o['job_ms_mean'] or 0:.0f} | {o['processes']} |"
            )
        for label, value in c["scaling"].items():
            verdict = "ok" if value >= SCALING_TARGET else "MISS"
            lines.append(f"| scaling {label} | {value:.2f}x | >= {SCALING_TARGET} {verdict} | | |")
        m = c.get("machine")
        if m:
            runs = " / ".join(f"{r['scaling']:.2f}" for r in m["runs"])
            lines.append(
                f"| the machine's own 2-process scaling (pure-Python spin, before / after) "
                f"| {m['scaling']:.2f}x ({runs}) | the most any launcher can reach here | | |"
            )
    return "\n".join(lines)


def _previous_grids() -> dict[str, Any]:
    try:
        previous = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}
    grids = previous.get("grids") or {}
    return {g: v for g, v in grids.items() if isinstance(v, dict) and "measured" in v}


def _spread(values: dict[str, float] | None) -> str:
    if not values:
        return "-"
    return f"{values['spread']:.1f} ({values['min']:.0f}-{values['max']:.0f})"


def main(argv: list[str] | None = None) -> int:
    data.ensure_bytecode()  # as a user's Python would have it (bench/data.py)
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_sweep", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--grids", "--grid", default="50,1000", help="comma-separated: 50, 1000 (e.g. --grid 1000)"
    )
    parser.add_argument("--skip-headline", action="store_true")
    parser.add_argument(
        "--skip-cpu-bound", action="store_true", help="leave out the 16 x 1M-bar scaling sweep"
    )
    parser.add_argument(
        "--launchers",
        default="",
        help="comma-separated subset of: " + ", ".join(LAUNCHERS) + " (default: all)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    started, load_before = time.perf_counter(), os.getloadavg()
    db = ensure_goog_db()
    unknown = [g for g in args.grids.split(",") if g and g not in GRIDS]
    if unknown:
        print(
            f"error: --grids: unknown grid {unknown[0]!r}; known: {', '.join(GRIDS)}",
            file=sys.stderr,
        )
        return 2
    launchers = [x.strip() for x in args.launchers.split(",")] if args.launchers else None
    if launchers and any(x not in LAUNCHERS for x in launchers):
        bad = next(x for x in launchers if x not in LAUNCHERS)
        print(
            f"error: --launchers: unknown {bad!r}; known: {', '.join(LAUNCHERS)}", file=sys.stderr
        )
        return 2
    grids = {g: run_grid(db, g, launchers) for g in args.grids.split(",") if g}
    # a grid run on its own (``--grid 1000``) keeps the other grids' last figures in sweep.json;
    # each grid carries its own date and load average ("measured")
    kept = _previous_grids()
    results: dict[str, Any] = {
        "grids": {g: grids.get(g) or kept[g] for g in GRIDS if g in grids or g in kept}
    }
    if not args.skip_cpu_bound:
        results["cpu_bound"] = run_cpu_bound()
    if not args.skip_headline:
        results["headline"] = run_headline()
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - started, 1),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    text = table(results)
    print(text)
    results["table"] = text.splitlines()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
