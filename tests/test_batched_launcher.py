"""``hydra/launcher=batched`` (issue 13): lean in-process and forked jobs, same outputs as basic."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.helpers import make_market_db, run_cli, synthetic_bars

GRID = ["strategy.fast=3,6", "market.chunk_size=50,1000"]  # 4 jobs, 2 behaviour groups


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(
        tmp_path_factory.mktemp("batched_db") / "market.duckdb", synthetic_bars(3, 400, seed=4)
    )


def _sweep(db: Path, sweep_dir: Path, *launcher: str) -> list[dict[str, str]]:
    args = ["-m", "+experiment=backtest", f"db.path={db}", f"hydra.sweep.dir={sweep_dir}"]
    proc = run_cli("runner", [*args, *GRID, *launcher])
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(sweep_dir / "sweep_report.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_batched_launcher_when_a_grid_runs_then_jobs_equal_the_basic_launchers(
    market_db: Path, tmp_path: Path, n_jobs: int
) -> None:
    """Same digests, configs and per-job files as Hydra's basic launcher; n_jobs=2 forks 2 workers."""
    # Arrange
    basic = _sweep(market_db, tmp_path / "basic")
    # Act
    batched = _sweep(
        market_db, tmp_path / "batched", "hydra/launcher=batched", f"hydra.launcher.n_jobs={n_jobs}"
    )
    # Assert
    keys = ("job", "overrides", "group", "status", "parity", "digest")
    assert [[r[k] for k in keys] for r in batched] == [[r[k] for k in keys] for r in basic]
    assert len({r["digest"] for r in batched}) == 2 and {r["parity"] for r in batched} == {"ok"}
    pids = set()
    for row in batched:
        run_dir, basic_dir = Path(row["run_dir"]), tmp_path / "basic" / row["job"]
        for name in ("summary.json", "trades.csv", "results/runs.parquet", ".hydra/overrides.yaml"):
            assert (run_dir / name).exists(), name
        assert (run_dir / ".hydra/config.yaml").read_text() == (
            basic_dir / ".hydra/config.yaml"
        ).read_text()
        assert not (run_dir / "equity.png").exists()  # run.plot unset: no plot in multirun jobs
        pids.add(json.loads((run_dir / "sweep_job.json").read_text())["pid"])
    assert len(pids) == n_jobs
