"""Sweeps compare trading results (issue 12): ranking, sweep_results.parquet, heatmap, DSR/PBO."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from runner import sweep_stats
from runner.sweep import JobRow
from tests.helpers import make_market_db, read_shared_csv, run_cli


def _row(num: int, fast: int, slow: int, sharpe: float | None, tmp: Path, **stats: float) -> JobRow:
    run_dir = tmp / str(num)
    run_dir.mkdir(parents=True, exist_ok=True)
    return JobRow(
        num=num,
        run_dir=run_dir,
        overrides=[f"strategy.fast={fast}", f"strategy.slow={slow}", "market.chunk_size=100"],
        status="completed" if sharpe is not None else "failed",
        digest=f"d{num}",
        behaviour={"strategy.fast": fast, "strategy.slow": slow, "db.path": "m.duckdb"},
        performance={"market.chunk_size": 100},
        group=f"B{num}",
        stats={"sharpe": sharpe, "total_fees": stats.get("total_fees", 0.0)}
        if sharpe is not None
        else {},
    )


def test_rank_rows_when_sharpe_then_best_first_and_failed_jobs_last(tmp_path: Path) -> None:
    rows = [
        _row(0, 5, 30, 0.2, tmp_path),
        _row(1, 10, 30, None, tmp_path),
        _row(2, 5, 40, 0.9, tmp_path),
    ]
    ranked = sweep_stats.rank_rows(rows, "sharpe")
    assert [(r.num, r.rank) for r in ranked] == [(2, 1), (0, 2), (1, None)]


def test_rank_rows_when_fees_then_lowest_first(tmp_path: Path) -> None:
    rows = [
        _row(0, 5, 30, 0.2, tmp_path, total_fees=9.0),
        _row(1, 5, 40, 0.1, tmp_path, total_fees=1.0),
    ]
    assert [r.num for r in sweep_stats.rank_rows(rows, "total_fees")] == [1, 0]


def test_check_rank_by_when_misspelt_then_one_line_naming_the_fix() -> None:
    with pytest.raises(
        ValueError,
        match=r"^hydra\.callbacks\.sweep_report\.rank_by must be a "
        r"statistic of summary\.json's stats, was 'sharp'\. Did you mean 'sharpe'\?",
    ):
        sweep_stats.check_rank_by("sharp")


def test_results_parquet_when_read_with_duckdb_then_one_typed_row_per_job(tmp_path: Path) -> None:
    # Arrange
    rows = sweep_stats.rank_rows(
        [
            _row(0, 5, 30, 0.2, tmp_path),
            _row(1, 10, 30, None, tmp_path),
            _row(2, 5, 40, 0.9, tmp_path),
        ],
        "sharpe",
    )
    path = tmp_path / "sweep_results.parquet"
    # Act
    sweep_stats.write_parquet(sweep_stats.results_frame(rows), path)
    got = duckdb.sql(
        f'SELECT job, "strategy.fast", "strategy.slow", "market.chunk_size", sharpe, status, digest, '
        f"rank FROM read_parquet('{path}') ORDER BY job"
    ).fetchall()
    types = {
        r[0]: r[1] for r in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    }
    # Assert
    assert got == [
        (0, 5, 30, 100, 0.2, "completed", "d0", 2),
        (1, 10, 30, 100, None, "failed", "d1", None),
        (2, 5, 40, 100, 0.9, "completed", "d2", 1),
    ]
    assert types["strategy.fast"] == "BIGINT" and types["sharpe"] == "DOUBLE"
    assert {"psr", "sqn", "buy_hold_return_pct", "exposure_pct"} <= set(types)


def test_heatmap_when_two_behaviour_keys_vary_then_written(tmp_path: Path) -> None:
    rows = [
        _row(k, f, s, 0.1 * k, tmp_path) for k, (f, s) in enumerate([(5, 30), (5, 40), (10, 30)])
    ]
    keys = sweep_stats.varying_behaviour_keys(rows)
    assert keys == ["strategy.fast", "strategy.slow"]
    assert sweep_stats.plot_heatmap(rows, keys, "sharpe", tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 5000
    assert not sweep_stats.plot_heatmap(rows, keys[:1], "sharpe", tmp_path / "h1.png")


def _write_daily(row: JobRow, returns: np.ndarray) -> None:
    days = pd.bdate_range("2020-01-01", periods=len(returns) + 1).strftime("%Y-%m-%d")
    equity = 1e6 * np.cumprod(np.r_[1.0, 1 + returns])
    pd.DataFrame({"day": days, "equity": equity}).to_csv(
        row.run_dir / "equity_daily.csv", index=False
    )


def test_overfit_lines_when_ten_trials_of_noise_then_dsr_and_pbo_read_as_luck(
    tmp_path: Path,
) -> None:
    """Ten trials of pure noise: neither the best Sharpe nor the in-sample winner means anything."""
    rng = np.random.default_rng(5)
    rows = [_row(k, 5 + k, 40, 0.0, tmp_path) for k in range(10)]
    for row in rows:
        _write_daily(row, rng.normal(0, 0.01, 400))
    dsr_line, pbo_line = sweep_stats.overfit_lines(rows)
    assert (
        dsr_line.startswith("Deflated Sharpe Ratio of the best job")
        and "over 10 trials" in dsr_line
    )
    assert "not significant at 5 %" in dsr_line
    assert pbo_line.startswith("Probability of Backtest Overfitting (CSCV, 400 common days in 16")
    assert "12,870 splits, 10 trials" in pbo_line


def test_overfit_lines_when_one_trial_has_real_edge_then_dsr_significant_and_pbo_low(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(6)
    rows = [_row(k, 5 + k, 40, 0.0, tmp_path) for k in range(8)]
    for k, row in enumerate(rows):
        _write_daily(row, rng.normal(0.004 if k == 3 else 0.0, 0.01, 600))
    dsr_line, pbo_line = sweep_stats.overfit_lines(rows)
    assert "job 3" in dsr_line and "significant at 5 %: unlikely" in dsr_line
    assert "**0.00**" in pbo_line


@pytest.fixture(scope="module")
def goog_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(
        tmp_path_factory.mktemp("goog") / "goog.duckdb", read_shared_csv("goog_daily_2004_2013.csv")
    )


@pytest.mark.slow
def test_sweep_when_goog_fast_by_slow_5x5_then_ranked_report_heatmap_and_parquet(
    goog_db: Path, tmp_path: Path
) -> None:
    """The README's command: 25 sma_cross jobs on GOOG, ranked by Sharpe, heatmap, DSR and PBO."""
    # Arrange
    sweep_dir = tmp_path / "sweep"
    # Act
    proc = run_cli(
        "runner",
        [
            "-m",
            "+experiment=backtest",
            f"db.path={goog_db}",
            "symbols=[GOOG]",
            "strategy.fast=5,10,15,20,25",
            "strategy.slow=30,40,50,60,70",
            "run.html=false",
            "run.plot=false",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        timeout=900,
    )
    # Assert
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(sweep_dir / "sweep_report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 25
    sharpes = [float(r["sharpe"]) for r in rows]
    assert sharpes == sorted(sharpes, reverse=True) and len(set(sharpes)) > 10
    assert [int(r["rank"]) for r in rows] == list(range(1, 26))
    assert all(r["return_pct"] and r["max_drawdown_pct"] and r["n_trades"] for r in rows)
    assert (sweep_dir / "sweep_heatmap.png").stat().st_size > 10_000
    report = (sweep_dir / "sweep_report.md").read_text()
    assert "Ranked by `sharpe`" in report and "![sharpe by strategy.fast x strategy.slow]" in report
    assert "Deflated Sharpe Ratio of the best job" in report and "over 25 trials" in report
    assert "Probability of Backtest Overfitting (CSCV, 2,147 common days in 16 blocks" in report
    grid = duckdb.sql(
        f'SELECT "strategy.fast" AS fast, "strategy.slow" AS slow, sharpe, n_trades, status '
        f"FROM read_parquet('{sweep_dir / 'sweep_results.parquet'}') ORDER BY sharpe DESC"
    ).fetchall()
    assert len(grid) == 25 and {g[4] for g in grid} == {"completed"}
    assert grid[0][2] == pytest.approx(sharpes[0]) and (grid[0][0], grid[0][1]) in {
        (f, s) for f in (5, 10, 15, 20, 25) for s in (30, 40, 50, 60, 70)
    }
    default = next(g for g in grid if (g[0], g[1]) == (10, 30))
    assert default[3] == 32  # the golden run (DESIGN section 5) is one cell of the grid


@pytest.mark.parametrize("kind", ["fractional", "integral", "with_nan"])
def test_daily_returns_when_read_then_equal_pandas_pct_change_dropna(
    kind: str, tmp_path: Path
) -> None:
    """Issue 13: the sweep report's per-day returns, computed on arrays, equal pandas' exactly."""
    from runner import run_stats

    # Arrange
    rng = np.random.default_rng(5)
    ts = 1_600_000_000_000_000 + np.arange(300, dtype=np.int64) * 86_400_000_000
    values = 1e6 + np.cumsum(rng.normal(0, 321.123, 300))
    if kind == "integral":
        values = np.round(values)
    if kind == "with_nan":
        values[[3, 40, 41]] = np.nan
    path = tmp_path / "equity_daily.csv"
    run_stats.write_equity_daily(path, pd.DataFrame({"ts": ts, "equity": values}))
    # Act
    ours = sweep_stats.daily_returns(path)
    # Assert
    expected = pd.read_csv(path, index_col="day")["equity"].pct_change().dropna()
    pd.testing.assert_series_equal(ours, expected, check_exact=True, check_index_type=True)
