"""Issue 13, per-job costs of a sweep: every shortcut produces exactly what the long way did."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from components.execution.records import EquityRow
from components.execution.write_buffer import WriteBuffer, digest_of_results, open_results
from components.results.overfit import pbo_cscv, pbo_cscv_batched
from components.results.stats import day_returns
from runner import fast_compose, job_cache, run_stats
from tests.helpers import make_market_db, run_cli, synthetic_bars

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(
        tmp_path_factory.mktemp("speed_db") / "market.duckdb", synthetic_bars(2, 300, seed=7)
    )


@pytest.mark.parametrize(("periods", "trials"), [(400, 12), (97, 3), (64, 2), (1000, 40)])
def test_pbo_batched_when_computed_then_bit_identical_to_pbo_cscv(
    periods: int, trials: int
) -> None:
    # Arrange: returns with exact ties between trials and a flat (zero-variance) stretch
    rng = np.random.default_rng(periods * trials)
    returns = rng.normal(0.0, 0.01, (periods, trials))
    returns[:, 1] = returns[:, 0]
    returns[: periods // 3, -1] = 0.0
    # Act
    fast, slow = pbo_cscv_batched(returns, n_splits=16, batch=100), pbo_cscv(returns, n_splits=16)
    # Assert
    assert fast.pbo == slow.pbo and fast.n_combinations == slow.n_combinations
    assert np.array_equal(fast.logits, slow.logits)


def test_pbo_batched_when_too_few_periods_then_the_same_error() -> None:
    with pytest.raises(ValueError, match=r"^pbo_cscv needs >= 2 trials"):
        pbo_cscv_batched(np.zeros((5, 3)), n_splits=16)


@pytest.mark.parametrize("experiment", ["backtest", "momentum", "rsi_guarded"])
@pytest.mark.parametrize(("resolve", "sort_keys"), [(False, False), (True, True)])
def test_to_yaml_when_config_dumped_then_the_text_of_omegaconf(
    experiment: str, resolve: bool, sort_keys: bool, tmp_path: Path
) -> None:
    # Arrange: a composed config plus strings YAML would read back as other types
    if not (CONF_DIR / "experiment" / f"{experiment}.yaml").exists():
        pytest.skip(f"no experiment {experiment}")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config", overrides=[f"+experiment={experiment}", f"db.path={tmp_path / 'm.duckdb'}"]
        )
    extra = OmegaConf.create(
        {"a": "1", "b": "true", "c": "null", "d": "x: y", "e": "é ü", "f": "  pad", "g": "a" * 120}
    )
    # Act / Assert
    for node in (cfg, extra, OmegaConf.create(["strategy.fast=5", "x='a b'"])):
        assert fast_compose.to_yaml(
            node, resolve=resolve, sort_keys=sort_keys
        ) == OmegaConf.to_yaml(node, resolve=resolve, sort_keys=sort_keys)


def test_equity_daily_when_written_then_the_text_pandas_wrote(tmp_path: Path) -> None:
    # Arrange: minute-ish stamps over several days, values with long reprs
    rng = np.random.default_rng(3)
    ts = np.cumsum(rng.integers(1, 7_200_000_000, 500)).astype(np.int64) + 1_600_000_000_000_000
    equity = pd.DataFrame({"ts": ts, "equity": 1e6 + np.cumsum(rng.normal(0, 123.456, 500))})
    ends, values, _ = day_returns(ts, equity["equity"].to_numpy())
    days = pd.to_datetime(ends, unit="us", utc=True).strftime("%Y-%m-%d")
    expected = tmp_path / "pandas.csv"
    pd.DataFrame({"day": days, "equity": values}).to_csv(
        expected, index=False, float_format="%.17g"
    )
    # Act
    run_stats.write_equity_daily(tmp_path / "ours.csv", equity)
    # Assert
    assert (tmp_path / "ours.csv").read_bytes() == expected.read_bytes()


def test_attached_buffer_when_rows_flushed_then_an_ordinary_results_db_with_the_same_digest(
    tmp_path: Path,
) -> None:
    # Arrange
    rows = [EquityRow(1_000_000 * i, 1e6, 1e6 + i * 0.1) for i in range(50)]
    plain, attached = WriteBuffer(7), job_cache.AttachedWriteBuffer(7)
    try:
        for buffer, name in ((plain, "plain.duckdb"), (attached, "attached.duckdb")):
            buffer.open(tmp_path / name)
            for row in rows:
                buffer.add("equity", row)
            buffer.flush()
            buffer.con.execute(
                "INSERT INTO runs VALUES ('r', 'completed', now(), NULL, 'h', 'db', 1, NULL, NULL, NULL)"
            )
            buffer.close()
    finally:
        job_cache.release()
    # Assert: another connection reads the same rows from both files (nothing left in a WAL)
    assert not (tmp_path / "attached.duckdb.wal").exists()
    got = {}
    for name in ("plain.duckdb", "attached.duckdb"):
        con = duckdb.connect(str(tmp_path / name), read_only=True)
        got[name] = (
            con.execute("SELECT epoch_us(ts), cash, equity FROM equity ORDER BY ts").fetchall(),
            con.execute("SELECT status FROM runs").fetchall(),
            digest_of_results(con),
        )
        con.close()
    assert got["plain.duckdb"] == got["attached.duckdb"]
    assert len(got["attached.duckdb"][0]) == 50


def test_batched_sweep_when_jobs_ran_then_each_results_db_proves_its_digest(
    market_db: Path, tmp_path: Path
) -> None:
    """The attached results DB, the in-memory equity and the in-place configs change no output."""
    # Arrange
    sweep = tmp_path / "sweep"
    args = ["-m", "+experiment=backtest", f"db.path={market_db}", f"hydra.sweep.dir={sweep}"]
    grid = ["strategy.fast=3,5,7", "strategy.slow=20,30"]
    # Act
    batched = run_cli("runner", [*args, *grid, "hydra/launcher=batched"])
    basic = run_cli("runner", [*args[:-1], f"hydra.sweep.dir={tmp_path / 'basic'}", *grid])
    # Assert
    assert batched.returncode == 0, batched.stderr[-3000:]
    assert basic.returncode == 0, basic.stderr[-3000:]
    for job in range(6):
        run_dir, basic_dir = sweep / str(job), tmp_path / "basic" / str(job)
        summary = json.loads((run_dir / "summary.json").read_text())
        con = open_results(run_dir)  # results/*.parquet (buffer.sweep_format's default)
        status, digest = con.execute("SELECT status, digest FROM runs").fetchone()
        assert digest_of_results(con) == digest == summary["digest"] and status == "completed"
        con.close()
        reference = json.loads((basic_dir / "summary.json").read_text())
        for key in ("digest", "stats", "config_hash", "n_trades", "final_equity"):
            assert summary[key] == reference[key], key
        for name in (
            "trades.csv",
            "equity_daily.csv",
            ".hydra/config.yaml",
            ".hydra/overrides.yaml",
        ):
            assert (run_dir / name).read_text() == (basic_dir / name).read_text(), name
        assert "resolved config:" in (run_dir / "runner.log").read_text()
        record = json.loads((run_dir / "sweep_job.json").read_text())
        assert record["rss_start_mb"] is None or record["rss_start_mb"] > 0


RUN_ROW = "INSERT INTO runs VALUES ('r', 'running', now(), NULL, 'h', 'db', 1, NULL, NULL, NULL)"


def _equity_rows(n: int) -> list[EquityRow]:
    return [EquityRow(1_000_000 * i, 1e6, 1e6 + i * 0.1) for i in range(n)]


def _read_back(path: Path) -> tuple[list[tuple], list[tuple], str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return (
            con.execute("SELECT epoch_us(ts), cash, equity FROM equity ORDER BY ts").fetchall(),
            con.execute("SELECT status, digest FROM runs").fetchall(),
            digest_of_results(con),
            con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0],
        )
    finally:
        con.close()


def test_deferred_buffer_when_batch_not_full_then_rows_wait_for_commit_and_land_with_runs_row(
    tmp_path: Path,
) -> None:
    """Issue 13: the end-of-run flush, the runs row and its update are one transaction."""
    # Arrange
    buffer = job_cache.AttachedWriteBuffer(100)
    buffer.open(tmp_path / "deferred.duckdb")
    buffer.defer_commits()
    buffer.execute_with_next_commit(RUN_ROW, [])
    try:
        # Act
        for row in _equity_rows(30):
            buffer.add("equity", row)
        assert buffer.flush() == 0  # digested, not committed
        before = buffer.con.execute("SELECT count(*) FROM equity").fetchone()[0]
        runs_before = buffer.con.execute("SELECT count(*) FROM runs").fetchone()[0]
        digest = buffer.digest.hexdigest()
        written = buffer.commit(("UPDATE runs SET status = 'reporting', digest = ?", [digest]))
    finally:
        buffer.close()
        job_cache.release()
    # Assert
    assert (before, runs_before, written) == (0, 0, 30)
    rows, runs, persisted, block_size = _read_back(tmp_path / "deferred.duckdb")
    assert len(rows) == 30 and runs == [("reporting", digest)] and persisted == digest
    assert block_size == job_cache.RESULTS_BLOCK_SIZE
    assert not (tmp_path / "deferred.duckdb.wal").exists()


def test_deferred_buffer_when_batch_fills_then_it_commits_at_once_with_the_runs_row(
    tmp_path: Path,
) -> None:
    # Arrange
    buffer = job_cache.AttachedWriteBuffer(10)
    buffer.open(tmp_path / "filled.duckdb")
    buffer.defer_commits()
    buffer.execute_with_next_commit(RUN_ROW, [])
    try:
        # Act
        for row in _equity_rows(25):
            buffer.add("equity", row)
        committed = buffer.con.execute("SELECT count(*) FROM equity").fetchone()[0]
        runs = buffer.con.execute("SELECT status FROM runs").fetchall()
        buffer.flush()
        still = buffer.con.execute("SELECT count(*) FROM equity").fetchone()[0]
        buffer.commit()
    finally:
        buffer.close()
        job_cache.release()
    # Assert
    assert (committed, runs, still) == (20, [("running",)], 20)
    assert len(_read_back(tmp_path / "filled.duckdb")[0]) == 25


def test_kept_equity_when_a_deferring_buffer_is_flushed_twice_then_each_row_kept_once(
    tmp_path: Path,
) -> None:
    # Arrange
    buffer = job_cache.AttachedWriteBuffer(10)
    buffer.open(tmp_path / "kept.duckdb")
    buffer.defer_commits()
    kept = run_stats.keep_equity_in_memory(buffer, always=True)
    try:
        # Act
        for row in _equity_rows(25):
            buffer.add("equity", row)
        buffer.flush()
        buffer.flush()
        buffer.commit()
        frame = run_stats.equity_frame(buffer, kept)
    finally:
        buffer.close()
        job_cache.release()
    # Assert
    assert frame["ts"].tolist() == [r.ts for r in _equity_rows(25)]
    assert frame["equity"].tolist() == [r.equity for r in _equity_rows(25)]
    assert frame["ts"].dtype == np.int64


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.floats(1.0, 1e7), st.just(float("nan")), st.floats(-1e3, 1e3)), max_size=40
    )
)
def test_max_drawdown_when_any_equity_then_equals_pandas_cummax_formula(
    values: list[float],
) -> None:
    # Arrange
    series = pd.Series(values, dtype=np.float64)
    # Act
    got = run_stats.max_drawdown_pct(series.to_numpy())
    # Assert: bit for bit what the summary computed with pandas
    expected = float((1 - series / series.cummax()).max() * 100) if len(series) else 0.0
    assert got == expected or (np.isnan(got) and np.isnan(expected))
