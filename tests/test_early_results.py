"""A single run creates results.duckdb on a thread while it plans (runner.app._EarlyResults).

The run dir must still end exactly as before: a run refused while planning leaves no results DB
(nor its WAL), and a run that completes has every row in it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import make_market_db, results_rows, run_cli, synthetic_bars


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("early") / "market.duckdb"
    return make_market_db(path, synthetic_bars(3, 400, seed=11))


def test_run_when_planning_refuses_then_early_results_db_removed(
    market_db: Path, tmp_path: Path
) -> None:
    # Arrange
    run_dir = tmp_path / "run"
    # Act: the plan refuses a symbol the market DB lacks, after the results DB was started
    proc = run_cli(
        "runner",
        [
            "+experiment=backtest",
            f"db.path={market_db}",
            f"hydra.run.dir={run_dir}",
            "symbols=[NOPE]",
        ],
    )
    # Assert
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "NOPE" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (run_dir / "results.duckdb").exists()
    assert not (run_dir / "results.duckdb.wal").exists()


def test_run_when_completed_then_early_results_db_holds_every_row(
    market_db: Path, tmp_path: Path
) -> None:
    # Arrange
    run_dir = tmp_path / "run"
    # Act
    proc = run_cli(
        "runner",
        [
            "+experiment=backtest",
            f"db.path={market_db}",
            f"hydra.run.dir={run_dir}",
            "run.plot=false",
        ],
    )
    # Assert
    assert proc.returncode == 0, proc.stderr
    assert results_rows(run_dir, "runs")[0][0] == run_dir.name
    assert len(results_rows(run_dir, "equity")) > 0
