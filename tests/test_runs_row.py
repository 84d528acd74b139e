"""components/results/runs.py: the runs row's statements on a real results DB."""

from __future__ import annotations

from pathlib import Path

import duckdb

from components.execution.records import results_ddl
from components.results import runs


def _row(con: duckdb.DuckDBPyConnection) -> dict:
    cur = con.execute(
        "SELECT run_id, status, ended_at IS NOT NULL, config_hash, market_db, market_db_version, "
        "digest, epoch_us(stopped_at_ts), message FROM runs"
    )
    names = [d[0] for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=True))


def test_runs_row_when_run_completes_then_running_reporting_completed(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "results.duckdb"))
    con.execute(results_ddl())
    con.execute(*runs.started("r1", "abc", "/data/m.duckdb", 7))
    assert _row(con)["status"] == runs.RUNNING
    con.execute(*runs.loop_end("r1", runs.REPORTING, "d" * 64, 1_700_000_000_000_000))
    row = _row(con)
    assert (row["status"], row["digest"], row["epoch_us(stopped_at_ts)"]) == (
        runs.REPORTING,
        "d" * 64,
        1_700_000_000_000_000,
    )
    con.execute(*runs.final_status("r1", "completed"))
    row = _row(con)
    assert row["status"] == "completed" and row["market_db_version"] == 7 and row["message"] is None


def test_runs_row_when_run_fails_then_failed_with_type_and_clipped_message(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "results.duckdb"))
    con.execute(results_ddl())
    con.execute(*runs.started("r2", "abc", "/data/m.duckdb", 1))
    con.execute(*runs.failed("r2", None, ValueError("x" * 600)))
    row = _row(con)
    assert row["status"] == runs.FAILED and row["epoch_us(stopped_at_ts)"] is None
    assert row["message"].startswith("ValueError: x") and len(row["message"]) == 500


def test_started_and_ended_when_inserted_then_equals_started_then_loop_end(
    tmp_path: Path,
) -> None:
    """A multirun job's one INSERT leaves the row that ``started`` + ``loop_end`` leave."""
    con = duckdb.connect(str(tmp_path / "results.duckdb"))
    con.execute(results_ddl())
    con.execute(*runs.started("r3", "abc", "/data/m.duckdb", 7))
    con.execute(*runs.loop_end("r3", runs.REPORTING, "d" * 64, 1_700_000_000_000_000))
    two_steps = _row(con)
    con.execute("DELETE FROM runs")
    started_us = 1_764_000_000_123_456
    con.execute(
        *runs.started_and_ended(
            "r3",
            "abc",
            "/data/m.duckdb",
            7,
            started_us,
            runs.REPORTING,
            "d" * 64,
            1_700_000_000_000_000,
        )
    )
    assert _row(con) == two_steps
    started, ended = con.execute(
        "SELECT epoch_us(started_at), epoch_us(ended_at) FROM runs"
    ).fetchone()
    assert started == started_us and ended >= started_us
