"""Issue 13: a multirun job's results as Parquet files (``buffer.sweep_format=parquet``, default).

The Parquet layout must hold exactly the rows, order and digest a results.duckdb holds, whatever
the batch size, and read back through ``open_results`` with the same SQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.execution.records import EquityRow, InsightRow, TradeRow
from components.execution.write_buffer import (
    RESULTS_DIR,
    WriteBuffer,
    digest_of_results,
    open_results,
)
from runner import job_cache, sweep
from runner.parity import flatten
from tests.helpers import make_market_db, run_cli, synthetic_bars

RUN_ROW = ("r1", "hash", "/db/market.duckdb", 3)


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(
        tmp_path_factory.mktemp("parquet_db") / "market.duckdb", synthetic_bars(2, 300, seed=11)
    )


def _rows(n: int) -> list[tuple[str, tuple]]:
    """Interleaved rows of three tables, as a run emits them (NaN, None and text included)."""
    out: list[tuple[str, tuple]] = []
    for i in range(n):
        out.append(("equity", EquityRow(86_400_000_000 * i, 1e6 - i, 1e6 + i * 0.1)))
        if i % 3 == 0:
            out.append(
                (
                    "insights",
                    InsightRow(i, 86_400_000_000 * i, "GOOG", "s", "long", "cross", 0.5, 1.0),
                )
            )
        if i % 5 == 4:
            pnl = float("nan") if i == 9 else i * 1.5
            out.append(
                ("trades", TradeRow(i, "A'B", i, 10.0, i + 1, 11.0, -100, 0.0, pnl, "signal"))
            )
    return out


def _fill(buffer: WriteBuffer, rows: list[tuple[str, tuple]]) -> None:
    for table, row in rows:
        buffer.add(table, row)


def _snapshot(con: duckdb.DuckDBPyConnection) -> tuple:
    try:
        return (
            con.execute("SELECT epoch_us(ts), cash, equity FROM equity").fetchall(),
            con.execute(
                "SELECT seq, epoch_us(ts), symbol, strategy, view, reason, value, reference "
                "FROM insights ORDER BY seq"
            ).fetchall(),
            con.execute(  # pnl as text: NaN equals NaN
                "SELECT seq, symbol, epoch_us(entry_ts), entry_price, epoch_us(exit_ts), "
                "exit_price, size, fees, pnl::VARCHAR, exit_reason FROM trades ORDER BY seq"
            ).fetchall(),
            con.execute("SELECT count(*) FROM denials").fetchone(),
            digest_of_results(con),
        )
    finally:
        con.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(n=st.integers(0, 60), batch=st.integers(1, 80))
def test_parquet_buffer_when_any_batch_size_then_same_rows_and_digest_as_a_results_db(
    tmp_path_factory: pytest.TempPathFactory, n: int, batch: int
) -> None:
    # Arrange
    tmp = tmp_path_factory.mktemp("pq")
    rows = _rows(n)
    plain, parquet = WriteBuffer(batch), job_cache.ParquetWriteBuffer(batch)
    (tmp / "plain").mkdir()
    plain.open(tmp / "plain" / "results.duckdb")
    parquet.open(tmp / "job" / RESULTS_DIR)
    # Act
    for buffer in (plain, parquet):
        buffer.record_run_start(RUN_ROW, 1_700_000_000_000_000)
        _fill(buffer, rows)
        buffer.end_loop(RUN_ROW, 1_700_000_000_000_000, "reporting", "d", None)
        buffer.record_status(RUN_ROW[0], "completed")
        buffer.close()
    # Assert
    assert parquet.digest.hexdigest() == plain.digest.hexdigest()
    expected = _snapshot(duckdb.connect(str(tmp / "plain" / "results.duckdb"), read_only=True))
    assert _snapshot(open_results(tmp / "job")) == expected
    assert expected[-1] == plain.digest.hexdigest()
    parts = sorted(p.name for p in (tmp / "job" / RESULTS_DIR).glob("equity-*.parquet"))
    batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]
    with_equity = sum(any(t == "equity" for t, _ in b) for b in batches)
    assert len(parts) == max(1, with_equity)  # one file per batch (an empty one if none)


def test_parquet_buffer_when_run_ends_then_runs_file_written_last_with_the_outcome(
    tmp_path: Path,
) -> None:
    # Arrange
    buffer = job_cache.ParquetWriteBuffer(100)
    buffer.open(tmp_path / RESULTS_DIR)
    buffer.record_run_start(RUN_ROW, 1_700_000_000_000_000)
    _fill(buffer, _rows(10))
    # Act
    buffer.end_loop(RUN_ROW, 1_700_000_000_000_000, "reporting", "abc", 1_600_000_000_000_000)
    before = sorted(p.name for p in (tmp_path / RESULTS_DIR).iterdir())
    buffer.record_status(RUN_ROW[0], "completed")
    # Assert: rows first, no runs file while reporting; then every table and the runs row
    assert "runs.parquet" not in before and "equity-0000.parquet" in before
    con = open_results(tmp_path)
    try:
        run = con.execute(
            "SELECT run_id, status, digest, epoch_us(started_at), epoch_us(stopped_at_ts), "
            "config_hash, market_db, market_db_version FROM runs"
        ).fetchall()
        tables = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    finally:
        con.close()
    assert run == [
        ("r1", "completed", "abc", 1_700_000_000_000_000, 1_600_000_000_000_000, "hash",
         "/db/market.duckdb", 3)
    ]  # fmt: skip
    assert {"runs", "equity", "denials", "kill_switch_events", "signals", "fills"} <= tables


def test_parquet_buffer_when_run_fails_then_runs_file_says_failed_with_the_error(
    tmp_path: Path,
) -> None:
    # Arrange
    buffer = job_cache.ParquetWriteBuffer(100)
    buffer.open(tmp_path / RESULTS_DIR)
    buffer.record_run_start(RUN_ROW, 1_700_000_000_000_000)
    _fill(buffer, _rows(4))
    # Act
    buffer.flush_after_failure()
    buffer.record_failure(RUN_ROW[0], 86_400_000_000, ValueError("boom"))
    # Assert
    con = open_results(tmp_path)
    try:
        assert con.execute("SELECT status, message FROM runs").fetchall() == [
            ("failed", "ValueError: boom")
        ]
        assert con.execute("SELECT count(*) FROM equity").fetchone() == (4,)
    finally:
        con.close()


def test_open_results_when_a_job_was_cut_short_then_missing_tables_read_as_empty(
    tmp_path: Path,
) -> None:
    # Arrange: one committed batch, no runs.parquet (killed before the end)
    buffer = job_cache.ParquetWriteBuffer(3)
    buffer.open(tmp_path / RESULTS_DIR)
    _fill(buffer, [("equity", EquityRow(1, 2.0, 3.0))] * 3)
    # Act
    con = open_results(tmp_path)
    # Assert
    try:
        assert con.execute("SELECT count(*) FROM equity").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM trades").fetchone() == (0,)
    finally:
        con.close()


def _sweep(market_db: Path, sweep: Path, *extra: str) -> list[Path]:
    args = [
        "-m",
        "+experiment=backtest",
        f"db.path={market_db}",
        f"hydra.sweep.dir={sweep}",
        "strategy.fast=3,5",
        "strategy.slow=20",
        *extra,
    ]
    proc = run_cli("runner", args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [sweep / str(job) for job in range(2)]


def test_sweep_when_default_format_then_parquet_results_prove_each_digest_as_duckdb_would(
    market_db: Path, tmp_path: Path
) -> None:
    # Act
    parquet = _sweep(market_db, tmp_path / "pq", "hydra/launcher=batched", "run.extras=true")
    duck = _sweep(market_db, tmp_path / "db", "buffer.sweep_format=duckdb")  # basic launcher
    # Assert
    for pq_dir, db_dir in zip(parquet, duck, strict=True):
        summary = json.loads((pq_dir / "summary.json").read_text())
        assert not (pq_dir / "results.duckdb").exists() and (pq_dir / RESULTS_DIR).is_dir()
        assert (db_dir / "results.duckdb").exists() and not (db_dir / RESULTS_DIR).exists()
        got = []
        for run_dir in (pq_dir, db_dir):
            con = open_results(run_dir)
            try:
                got.append(
                    (
                        digest_of_results(con),
                        con.execute("SELECT status, digest FROM runs").fetchall(),
                        con.execute(
                            "SELECT epoch_us(ts), equity FROM equity ORDER BY ts"
                        ).fetchall(),
                    )
                )
            finally:
                con.close()
        assert got[0] == got[1]
        assert got[0][0] == summary["digest"] and got[0][1] == [("completed", summary["digest"])]
        assert "results/" in (pq_dir / "summary.md").read_text()
        assert (pq_dir / "metrics.json").is_file()  # run.extras=true
        # a multirun job's default: no summary.md and metrics.json (summary.json has it all)
        assert not (db_dir / "summary.md").exists() and not (db_dir / "metrics.json").exists()
    # each job's record holds its overrides and flattened config, as .hydra/ has them, and the
    # report reads the same row from either
    for run_dir in (*parquet, *duck):
        record = json.loads((run_dir / "sweep_job.json").read_text())
        hydra_dir = run_dir / ".hydra"
        assert record["config"] == flatten(yaml.safe_load((hydra_dir / "config.yaml").read_text()))
        assert record["overrides"] == yaml.safe_load((hydra_dir / "overrides.yaml").read_text())
        row = sweep.read_job(run_dir)
        for key in ("config", "overrides"):
            record.pop(key)
        (run_dir / "sweep_job.json").write_text(json.dumps(record))
        assert sweep.read_job(run_dir) == row
    # one glob reads the whole sweep
    con = duckdb.connect()
    glob = str(tmp_path / "pq" / "*" / RESULTS_DIR / "runs.parquet")
    assert con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone() == (2,)


def test_sweep_when_sweep_format_unknown_then_one_line_and_exit_2(
    market_db: Path, tmp_path: Path
) -> None:
    # Act
    proc = run_cli(
        "runner",
        [
            "+experiment=backtest",
            f"db.path={market_db}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "buffer.sweep_format=csv",
        ],
    )
    # Assert
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "buffer.sweep_format" in lines[0] and "duckdb" in lines[0]
    assert "Traceback" not in proc.stderr


def test_sweep_when_plot_asked_then_kill_switch_events_read_from_parquet_into_the_figures(
    market_db: Path, tmp_path: Path
) -> None:
    # Arrange: a limit that trips, so the figures have a kill-switch event to draw
    extra = ("hydra/launcher=batched", "run.plot=true", "execution.kill_switch.max_daily_trades=0")
    # Act
    jobs = _sweep(market_db, tmp_path / "plot", *extra)
    # Assert
    for run_dir in jobs:
        assert (run_dir / "equity.png").stat().st_size > 0
        con = open_results(run_dir)
        try:
            events = con.execute("SELECT state_to FROM kill_switch_events").fetchall()
            denials = con.execute("SELECT count(*) FROM denials").fetchone()[0]
        finally:
            con.close()
        assert events and denials > 0
