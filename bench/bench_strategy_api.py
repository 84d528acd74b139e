"""``python -m bench.bench_strategy_api``: the strategy API against backtesting.py and against itself.

Workload A (bench/data.py: 10 symbols x 100k synthetic minute bars, 1M bars), every figure from a
fresh process, all in one run:

- Donchian (examples/strategies/donchian.py) with the per-step ``decide`` API, through the runner
  (chunked + cached + persistence), timed as a whole process (start-up and data loading included);
- the same rules in backtesting.py 0.6.6, one ``Backtest`` per symbol (as the peers are measured),
  in one process that loads the same bars from the same DuckDB file, timed the same way; the two
  trade lists are compared (count and total pnl);
- the vectorised form (``donchian_vector``): loop bars/s with persistence, and bars / process time;
- ``sma_cross`` on the API against the pre-API implementation (bench/legacy_strategies.py).

    python -m bench.bench_strategy_api            # about 2-4 minutes on 2 cores
    python -m bench.bench_strategy_api --repeat 1

Writes bench/results/strategy_api.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import data, e2e

RESULTS = Path(__file__).resolve().parent / "results" / "strategy_api.json"
TARGETS = {
    "donchian_speedup_vs_backtesting_py": 2.0,
    "vector_bars_per_s": 300_000,
    "builtin_ratio": 0.9,
}


def runner_once(db: Path, name: str, plugins: str, *overrides: str) -> dict[str, Any]:
    """Run the runner once with ``RUNNER_PLUGINS=plugins``; return its summary and process time."""
    previous = os.environ.get("RUNNER_PLUGINS")
    os.environ["RUNNER_PLUGINS"] = plugins
    try:
        spec = e2e.RunSpec(
            name, ("market=chunked", "analytics=cached", "buffer=duckdb", *overrides)
        )
        return e2e.run_runner(db, spec, None)
    finally:
        if previous is None:
            os.environ.pop("RUNNER_PLUGINS", None)
        else:
            os.environ["RUNNER_PLUGINS"] = previous


def best_runner(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the figures of the fastest of ``runs`` (process time), with every rate recorded."""
    best = min(runs, key=lambda s: s["process_seconds"])
    m = best["metrics"]
    return {
        "process_seconds": best["process_seconds"],
        "all_process_seconds": [s["process_seconds"] for s in runs],
        "loop_bars_per_second": max(s["metrics"]["bars_per_second"] for s in runs),
        "all_loop_bars_per_second": [s["metrics"]["bars_per_second"] for s in runs],
        "bars": m["bars"],
        "process_bars_per_second": round(m["bars"] / best["process_seconds"], 1),
        "n_trades": best["n_trades"],
        "total_pnl": best["total_pnl"],
        "digest": best["digest"],
        "insights": best["record_counts"].get("insights"),
        "peak_rss_mb": m.get("peak_rss_mb"),
    }


def peer_once(db: Path) -> dict[str, Any]:
    """Run backtesting.py in a fresh process (``--peer``); return its figures and process time."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_strategy_api", "--peer", str(db)],
        cwd=data.REPO,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench: backtesting.py run failed:\n{proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = round(wall, 3)
    return out


def peer_main(db: str) -> int:
    """The backtesting.py side: load each symbol's bars from the DuckDB file and backtest it."""
    import warnings

    import duckdb
    import pandas as pd
    from backtesting import Backtest, Strategy

    entry, exit_ = 20, 10

    class DonchianBt(Strategy):
        def init(self) -> None:
            high, low = pd.Series(self.data.High), pd.Series(self.data.Low)
            self.upper = self.I(lambda: high.rolling(entry).max().shift(1).to_numpy())
            self.lower = self.I(lambda: low.rolling(exit_).min().shift(1).to_numpy())

        def next(self) -> None:
            if not self.position and self.data.Close[-1] > self.upper[-1]:
                self.buy(size=100)
            elif self.position.is_long and self.data.Close[-1] < self.lower[-1]:
                self.position.close()

    con = duckdb.connect(db, read_only=True)
    symbols = [r[0] for r in con.execute("SELECT DISTINCT symbol FROM bars ORDER BY 1").fetchall()]
    n_trades, pnl, bars = 0, 0.0, 0
    for symbol in symbols:
        frame = con.execute(
            "SELECT ts, open AS Open, high AS High, low AS Low, close AS Close, volume AS Volume "
            "FROM bars WHERE symbol = ? ORDER BY ts",
            [symbol],
        ).df()
        frame = frame.set_index(pd.DatetimeIndex(frame.pop("ts")).tz_localize(None))
        bars += len(frame)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = Backtest(frame, DonchianBt, cash=1_000_000, commission=0.0).run()
        n_trades += len(stats._trades)
        pnl += float(stats._trades["PnL"].sum())
    con.close()
    print(
        json.dumps({"n_trades": n_trades, "total_pnl": pnl, "bars": bars, "symbols": len(symbols)})
    )
    return 0


def measure(repeat: int) -> dict[str, Any]:
    """Run every figure ``repeat`` times, interleaved (A B C D E A B ...), so that a burst of load
    from other processes hits every figure alike; keep the fastest run of each."""
    db = data.ensure_db()
    examples = ("examples.strategies.donchian", "hydra.searchpath=[file://examples/conf]")
    legacy = ("bench.legacy_strategies", "hydra.searchpath=[file://bench/conf]")
    plan = [
        ("sma_cross legacy (before)", legacy[0], (legacy[1], "strategy=sma_cross_legacy")),
        ("sma_cross on the API (after)", legacy[0], (legacy[1], "strategy=sma_cross")),
        ("donchian per-step API", examples[0], (examples[1], "strategy=donchian")),
        ("donchian vectorised", examples[0], (examples[1], "strategy=donchian_vector")),
    ]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in plan}
    peers: list[dict[str, Any]] = []
    for i in range(max(1, repeat)):
        for name, plugins, overrides in plan:
            print(f"bench: {name} ({i + 1}/{repeat}) ...", flush=True)
            runs[name].append(runner_once(db, name, plugins, *overrides))
        print(f"bench: donchian in backtesting.py 0.6.6 ({i + 1}/{repeat}) ...", flush=True)
        peers.append(peer_once(db))
    out: dict[str, Any] = {"db": str(db.relative_to(data.REPO))}
    for name, got in runs.items():
        out[name] = best_runner(got)
    best_peer = min(peers, key=lambda r: r["process_seconds"])
    best_peer["all_process_seconds"] = [r["process_seconds"] for r in peers]
    out["donchian backtesting.py"] = best_peer
    return out


def _pair_rates(before: dict[str, Any], after: dict[str, Any]) -> tuple[list[float], list[float]]:
    return after["all_loop_bars_per_second"], before["all_loop_bars_per_second"]


def pairwise_ratio(before: dict[str, Any], after: dict[str, Any]) -> float:
    """Median over rounds of after / before loop rates, each pair run back to back.

    On a noisy 2-core machine the rate of one configuration swings by 20-30 % between rounds
    (session 6: the pre-API run alone went from 437k to 610k bars/s within one minute); two runs
    taken back to back see the same load, so their ratio is steadier than a ratio of two bests
    that may come from different rounds. Both figures are printed.
    """
    after_rates, before_rates = _pair_rates(before, after)
    return float(statistics.median(a / b for a, b in zip(after_rates, before_rates, strict=True)))


def table(r: dict[str, Any]) -> str:
    step, vec = r["donchian per-step API"], r["donchian vectorised"]
    peer, before, after = (
        r["donchian backtesting.py"],
        r["sma_cross legacy (before)"],
        r["sma_cross on the API (after)"],
    )
    speedup = peer["process_seconds"] / step["process_seconds"]
    ratio = after["loop_bars_per_second"] / before["loop_bars_per_second"]
    pair_ratio = pairwise_ratio(before, after)
    rows = [
        (
            "donchian, per-step API, whole process (1M bars, persistence)",
            f"{step['process_seconds']:.2f} s",
            "",
        ),
        (
            "donchian, backtesting.py 0.6.6, whole process (10 Backtests)",
            f"{peer['process_seconds']:.2f} s",
            "",
        ),
        (
            "speed-up of the API over backtesting.py",
            f"{speedup:.1f}x",
            f">= {TARGETS['donchian_speedup_vs_backtesting_py']}x",
        ),
        (
            "same trades? (runner / backtesting.py: count, total pnl)",
            f"{step['n_trades']} / {peer['n_trades']}, {step['total_pnl']:,.2f} / {peer['total_pnl']:,.2f}",
            "equal",
        ),
        (
            "donchian vectorised, loop with persistence",
            f"{vec['loop_bars_per_second']:,.0f} bars/s",
            ">= 300k",
        ),
        (
            "donchian vectorised, bars / whole-process time",
            f"{vec['process_bars_per_second']:,.0f} bars/s",
            "report",
        ),
        (
            "donchian per-step, loop with persistence",
            f"{step['loop_bars_per_second']:,.0f} bars/s",
            "report",
        ),
        (
            "sma_cross before (pre-API), loop with persistence",
            f"{before['loop_bars_per_second']:,.0f} bars/s",
            "",
        ),
        (
            "sma_cross on the API, loop with persistence",
            f"{after['loop_bars_per_second']:,.0f} bars/s",
            "",
        ),
        ("sma_cross API / before, best of each", f"{ratio:.3f}", "report"),
        (
            "sma_cross API / before, median of back-to-back pairs",
            f"{pair_ratio:.3f} (pairs: "
            + ", ".join(f"{a / b:.2f}" for a, b in zip(*_pair_rates(before, after), strict=True))
            + ")",
            ">= 0.90",
        ),
        ("sma_cross trades before / after", f"{before['n_trades']} / {after['n_trades']}", "equal"),
    ]
    checks = {
        "speed-up of the API over backtesting.py": speedup
        >= TARGETS["donchian_speedup_vs_backtesting_py"],
        "same trades? (runner / backtesting.py: count, total pnl)": step["n_trades"]
        == peer["n_trades"]
        and abs(step["total_pnl"] - peer["total_pnl"]) < 1e-6 * max(1.0, abs(peer["total_pnl"])),
        "donchian vectorised, loop with persistence": vec["loop_bars_per_second"]
        >= TARGETS["vector_bars_per_s"],
        "sma_cross API / before, median of back-to-back pairs": pair_ratio
        >= TARGETS["builtin_ratio"],
        "sma_cross trades before / after": before["n_trades"] == after["n_trades"]
        and before["total_pnl"] == after["total_pnl"],
    }
    lines = ["| figure | measured | target | verdict |", "|---|---|---|---|"]
    for name, value, target in rows:
        verdict = "" if name not in checks else ("ok" if checks[name] else "MISS")
        lines.append(f"| {name} | {value} | {target} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    data.ensure_bytecode()  # as a user's Python would have it (bench/data.py)
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_strategy_api", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per figure (fastest is reported)"
    )
    parser.add_argument(
        "--peer", metavar="DB", help=argparse.SUPPRESS
    )  # the backtesting.py process
    args = parser.parse_args(argv)
    if args.peer:
        return peer_main(args.peer)
    started, load = time.perf_counter(), os.getloadavg()
    results = measure(args.repeat)
    results["machine"] = {
        "cpus": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "bench_seconds": round(time.perf_counter() - started, 1),
        "repeat": args.repeat,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    text = table(results)
    results["table"] = text.splitlines()
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {RESULTS.relative_to(data.REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
