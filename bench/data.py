"""The benchmark market DB: 10 symbols x 100k synthetic minute bars (1M bars) with analytics snapshots.

The headline uses the analytics producer's default cadence (daily snapshots, 70 of them); a second
DB with hourly snapshots (1,667) shows how the cached provider's cost grows with snapshot count.

Built once with the producer CLIs (the same path users take) and kept in ``outputs/bench/``
(git-ignored); rebuilt when its shape does not match.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("runner", "components", "hydra_plugins", "producers", "examples", "bench")


def ensure_bytecode() -> None:
    """Compile the repository's modules to ``__pycache__`` (a no-op for those up to date).

    Every benchmark is a fresh process, and a user's Python caches bytecode after the first
    import. Where ``PYTHONDONTWRITEBYTECODE`` is set (this sandbox sets it) nothing is cached,
    so every process compiled all ~60 of our modules again: ~0.4 s more per process (a one-job
    sweep: 1.87 s against 1.47 s), which is not what users see. ``compileall`` writes the cache
    whatever that variable says, and imports then read it.
    """
    import compileall

    for package in PACKAGES:
        compileall.compile_dir(str(REPO / package), quiet=1)


N_SYMBOLS = 10
N_BARS = 100_000  # minute bars per symbol, no holes: 1M bars, 100k clock steps
SNAPSHOT_CADENCE = "1d"  # the analytics producer's default


def db_path(
    n_symbols: int = N_SYMBOLS, n_bars: int = N_BARS, cadence: str = SNAPSHOT_CADENCE
) -> Path:
    return REPO / "outputs" / "bench" / f"market_{n_symbols}x{n_bars}_{cadence}.duckdb"


def _shape(path: Path) -> tuple[int, int, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        bars, symbols = con.execute("SELECT count(*), count(DISTINCT symbol) FROM bars").fetchone()
        snaps = con.execute(
            "SELECT count(DISTINCT snapshot_ts) FROM analytics_snapshots"
        ).fetchone()[0]
    finally:
        con.close()
    return int(bars), int(symbols), int(snaps)


def ensure_db(
    n_symbols: int = N_SYMBOLS, n_bars: int = N_BARS, cadence: str = SNAPSHOT_CADENCE
) -> Path:
    """Return the bench DB path, building it with ``producers.demo`` + ``producers.analytics`` if needed."""
    path = db_path(n_symbols, n_bars, cadence)
    if path.exists():
        try:
            bars, symbols, snaps = _shape(path)
            if bars == n_symbols * n_bars and symbols == n_symbols and snaps > 0:
                return path
        except duckdb.Error:
            pass
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"bench: building {path.relative_to(REPO)} ({n_symbols} x {n_bars:,} minute bars) ...",
        flush=True,
    )
    _producer(
        "producers.demo",
        f"db.path={path}",
        f"demo.n_symbols={n_symbols}",
        f"demo.n_bars={n_bars}",
        "demo.stagger=0",
        "demo.gap_rate=0",
    )
    _producer("producers.analytics", f"db.path={path}", f"analytics.cadence={cadence}")
    return path


def _producer(module: str, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench: `python -m {module} {' '.join(args)}` failed:\n{proc.stderr}")


def step_end(path: Path, steps: int) -> str:
    """Return the ISO timestamp of clock step ``steps`` (1-based), to use as an inclusive ``end=``."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        (ts_us,) = con.execute(
            "SELECT max(t) FROM (SELECT DISTINCT epoch_us(ts) AS t FROM bars ORDER BY t LIMIT $n)",
            {"n": steps},
        ).fetchone()
    finally:
        con.close()
    import pandas as pd

    return pd.Timestamp(int(ts_us), unit="us", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S")
