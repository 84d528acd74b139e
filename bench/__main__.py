"""``python -m bench`` (``make bench``): throughput, memory, query counts and ratios (DESIGN section 8).

Never part of ``make test``. Prints one table and writes ``bench/results/bench.json``.

Data: 10 symbols x 100k synthetic minute bars (1M bars, 100k clock steps) built by the producer
CLIs into ``outputs/bench/``, with hourly analytics snapshots; strategy sma_cross (10/30).
Every runner measurement is a fresh ``python -m runner`` subprocess, so peak RSS is per run; the
loop's bars/s comes from its summary.json (the loop, not interpreter start-up). ``direct`` costs
milliseconds per clock step, so the direct and chunked-without-cache rows run on the first
``--direct-steps`` steps (10k by default) and report their rate; the same window is also run
with chunked+cached so the ratios compare like with like.

    python -m bench                    # everything, about 3-5 minutes on 2 cores
    python -m bench --quick            # smaller direct window, one repeat, no ingest section
    python -m bench --profile          # also cProfile the headline run in-process (top functions)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import ceiling, data, e2e, micro

RESULTS = Path(__file__).resolve().parent / "results" / "bench.json"
TARGETS = {
    "e2e_bars_per_s": 250_000,
    "e2e_stretch_bars_per_s": 400_000,
    "peak_rss_mb_1m": 500,
    "writer_rows_per_s": 400_000,
    "validation_s_per_1m": 0.5,
    "lookup_us": 10,
    "costs_brackets_ratio": 0.80,
}
CHUNK, BIG_CHUNK = 1000, 10_000
CACHED = ("market=chunked", "analytics=cached")
# issue 10: the headline with costs and brackets on (and shorts: reversal), same run, same data
COSTS_BRACKETS = (
    "broker.commission.fixed=1.0",
    "broker.commission.rate=0.001",
    "broker.spread=0.0005",
    "orders.stop_loss=0.005",
    "orders.take_profit=0.01",
)
MOMENTUM = ("strategy=momentum_rotation",)  # reads snapshots: the analytics query budgets


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per headline figure (best is reported)"
    )
    parser.add_argument(
        "--direct-steps", type=int, default=10_000, help="clock steps of the direct window"
    )
    parser.add_argument(
        "--skip-ingest", action="store_true", help="skip bench.bench_ingest (producer side)"
    )
    parser.add_argument(
        "--skip-sweep", action="store_true", help="skip bench.bench_sweep (parameter sweeps)"
    )
    parser.add_argument(
        "--skip-strategy-api",
        action="store_true",
        help="skip bench.bench_strategy_api (strategy API vs backtesting.py, built-ins before/after)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="--direct-steps 2000 --repeat 1 --skip-ingest --skip-sweep --skip-strategy-api",
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the headline run in this process"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.direct_steps, args.repeat, args.skip_ingest, args.skip_sweep = 2000, 1, True, True
        args.skip_strategy_api = True
    return args


def spec(name: str, *overrides: str, window: int | None = None) -> e2e.RunSpec:
    return e2e.RunSpec(name, tuple(overrides), window)


def run_e2e(db: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every runner subprocess: headline, window (direct vs chunked), memory at two chunk sizes."""
    end = data.step_end(db, args.direct_steps)
    n = args.direct_steps
    plan = [
        (spec("chunked+cached duckdb", *CACHED, "buffer=duckdb"), None, args.repeat, CHUNK),
        (
            spec("chunked+cached duckdb costs+brackets", *CACHED, "buffer=duckdb", *COSTS_BRACKETS),
            None,
            args.repeat,
            CHUNK,
        ),
        (spec("chunked+cached memory", *CACHED, "buffer=memory"), None, args.repeat, CHUNK),
        (
            spec("direct duckdb", "market=direct", "analytics=direct", "buffer=duckdb", window=n),
            end,
            1,
            None,
        ),
        (
            spec("chunked duckdb", "market=chunked", "analytics=direct", "buffer=duckdb", window=n),
            end,
            1,
            CHUNK,
        ),
        (spec("chunked+cached duckdb", *CACHED, "buffer=duckdb", window=n), end, 1, CHUNK),
        (spec("chunked+cached memory", *CACHED, "buffer=memory", window=n), end, 1, CHUNK),
        (
            spec("momentum analytics direct", *MOMENTUM, "analytics=direct", window=n),
            end,
            1,
            CHUNK,
        ),
        (spec("momentum analytics cached", *MOMENTUM, "analytics=cached"), None, 1, CHUNK),
        (
            spec(
                "chunked+cached duckdb chunk 10000",
                *CACHED,
                "buffer=duckdb",
                f"market.chunk_size={BIG_CHUNK}",
            ),
            None,
            1,
            BIG_CHUNK,
        ),
        (
            spec(
                "chunked+cached duckdb chunk 10000",
                *CACHED,
                "buffer=duckdb",
                f"market.chunk_size={BIG_CHUNK}",
                window=n,
            ),
            end,
            1,
            BIG_CHUNK,
        ),
    ]
    out: dict[str, Any] = {"window_end": end, "window_steps": n}
    for run_spec, window_end, repeat, chunk in plan:
        key = f"{run_spec.name} @ {'window' if window_end else 'full'}"
        print(f"bench: {key} ...", flush=True)
        out[key] = e2e.figures(e2e.best_of(db, run_spec, window_end, repeat), chunk)
    return out


def baseline_rss_mb() -> float:
    """Return the peak RSS of a process that imported the runner and did nothing else."""
    code = "import runner.entry, runner.resources as r; print(r.peak_rss_mb())"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=data.REPO, capture_output=True, text=True, check=True
    )
    return float(proc.stdout.strip().splitlines()[-1])


def run_ingest_section() -> dict[str, Any] | None:
    """Run ``python -m bench.bench_ingest --repeat 1`` (producer side) and return its JSON."""
    if not (Path(__file__).parent / "bench_ingest.py").exists():
        return None
    print("bench: bench_ingest (producer side) ...", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_ingest", "--repeat", "1"],
        cwd=data.REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(
            f"bench: bench_ingest failed, section skipped:\n{proc.stderr[-1500:]}", file=sys.stderr
        )
        return None
    return json.loads((Path(__file__).parent / "results" / "ingest.json").read_text())


def run_sweep_section() -> dict[str, Any] | None:
    """Run ``python -m bench.bench_sweep --skip-headline`` (sweeps vs backtesting.py); its JSON."""
    print("bench: bench_sweep (parameter sweeps vs backtesting.py optimize) ...", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_sweep", "--skip-headline"],
        cwd=data.REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(
            f"bench: bench_sweep failed, section skipped:\n{proc.stderr[-1500:]}", file=sys.stderr
        )
        return None
    return json.loads((Path(__file__).parent / "results" / "sweep.json").read_text())


def run_strategy_api_section(args: argparse.Namespace) -> dict[str, Any] | None:
    """Run ``python -m bench.bench_strategy_api`` (issue 11) and return its JSON."""
    print("bench: bench_strategy_api (strategy API vs backtesting.py) ...", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_strategy_api", "--repeat", str(args.repeat)],
        cwd=data.REPO,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(
            f"bench: bench_strategy_api failed, section skipped:\n{proc.stderr[-1500:]}",
            file=sys.stderr,
        )
        return None
    return json.loads((Path(__file__).parent / "results" / "strategy_api.json").read_text())


def profile_headline(db: Path) -> str:
    """cProfile the headline configuration in this process; return the top of the table."""
    import cProfile
    import io
    import pstats
    import tempfile

    import runner.components_index  # noqa: F401
    from runner.app import run_backtest
    from tests.helpers import compose_config

    cfg = compose_config(
        [
            "+experiment=backtest",
            f"db.path={db}",
            "run.plot=false",
            "run.progress=off",
            "run.log_level=WARNING",
            *CACHED,
            "buffer=duckdb",
        ]
    )
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="bench_profile_") as tmp:
        profiler.runcall(run_backtest, cfg, Path(tmp) / "run", quiet=True)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
    return text.getvalue()


def main(argv: list[str] | None = None) -> int:
    data.ensure_bytecode()  # as a user's Python would have it (bench/data.py)
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started, load_before = time.perf_counter(), os.getloadavg()
    db = data.ensure_db()
    results: dict[str, Any] = {"e2e": run_e2e(db, args)}
    hourly = data.ensure_db(cadence="1h")
    print("bench: chunked+cached duckdb, hourly snapshots @ full ...", flush=True)
    results["e2e"]["chunked+cached duckdb hourly snapshots @ full"] = e2e.figures(
        e2e.best_of(
            hourly,
            spec("chunked+cached duckdb hourly snapshots", *CACHED, "buffer=duckdb"),
            None,
            args.repeat,
        ),
        CHUNK,
    )
    print("bench: ceiling, writer, validation, lookups ...", flush=True)
    results["ceiling"] = ceiling.best_ceiling(db, repeat=3)
    results["ceiling"].update(ceiling.ceiling_process(db, repeat=3))
    results["baseline_rss_mb"] = baseline_rss_mb()
    results["writer_rows_per_s"] = micro.bench_writer()
    results["validation"] = micro.bench_validation(db)
    results["lookups"] = micro.bench_lookups(db)
    results["ingest"] = None if args.skip_ingest else run_ingest_section()
    results["sweep"] = None if args.skip_sweep else run_sweep_section()
    results["strategy_api"] = None if args.skip_strategy_api else run_strategy_api_section(args)
    results["machine"] = machine(load_before, os.getloadavg(), time.perf_counter() - started, args)
    results["targets"] = TARGETS
    from bench.report import table

    text = table(results)
    if results["sweep"]:
        text += "\n\n" + "\n".join(results["sweep"]["table"])
    if results["strategy_api"]:
        text += "\n\nStrategy API (bench/bench_strategy_api.py):\n\n" + "\n".join(
            results["strategy_api"]["table"]
        )
    print(text)
    results["table"] = text.splitlines()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {RESULTS.relative_to(data.REPO)}")
    if args.profile:
        print(profile_headline(db))
    return 0


def machine(
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
    seconds: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    import duckdb
    import numpy
    import pandas

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "duckdb": duckdb.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
        "bench_seconds": round(seconds, 1),
        "repeat": args.repeat,
        "direct_steps": args.direct_steps,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "git": git_state(),
    }


def git_state() -> str:
    """Return ``<commit>`` or ``<commit>+dirty``: the code the figures were measured on."""

    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=data.REPO, capture_output=True, text=True
        ).stdout.strip()

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")


if __name__ == "__main__":
    sys.exit(main())
