"""Resume a multirun in the same sweep dir (issue 13): reuse complete jobs, rerun the rest.

The slow test kills a real ``python -m runner -m`` sweep with SIGKILL halfway, reruns the same
command and compares its report and digests with an uninterrupted sweep's.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from components.data.market_db import bump_content_version
from runner import resume
from tests.helpers import REPO, compose_config, make_market_db, run_cli, synthetic_bars

GRID = ["strategy.fast=3,5,8", "strategy.slow=20,40"]  # 6 jobs, 6 behaviour groups
COMPARED = ("job", "overrides", "group", "status", "parity", "digest", "bars")


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four symbols x 6,000 minute bars: each job takes a noticeable fraction of a second."""
    return make_market_db(
        tmp_path_factory.mktemp("resume_db") / "market.duckdb", synthetic_bars(4, 6000, seed=5)
    )


def _args(db: Path, sweep_dir: Path, *extra: str) -> list[str]:
    return [
        "-m",
        "+experiment=backtest",
        f"db.path={db}",
        f"hydra.sweep.dir={sweep_dir}",
        *GRID,
        *extra,
    ]


def _rows(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "sweep_report.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _compared(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    return [tuple(r[k] for k in COMPARED) for r in rows]


def _complete(sweep_dir: Path) -> list[Path]:
    """The jobs that finished: summary.json written, then results/runs.parquet with the status."""
    return [
        p
        for p in sweep_dir.glob("*/summary.json")
        if (p.parent / "results" / "runs.parquet").exists()
    ]


def _kill_halfway(db: Path, sweep_dir: Path) -> int:
    """Start the sweep, SIGKILL it once two jobs completed; return how many had completed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", *_args(db, sweep_dir)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if len(_complete(sweep_dir)) >= 2:
                break
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return len(_complete(sweep_dir))


@pytest.mark.slow
def test_resume_when_a_sweep_was_killed_halfway_then_the_rerun_equals_an_uninterrupted_sweep(
    market_db: Path, tmp_path: Path
) -> None:
    """SIGKILL mid-sweep, rerun: complete jobs are reused, the rest run, the report is complete."""
    # Arrange
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert run_cli("runner", _args(market_db, whole)).returncode == 0
    done = _kill_halfway(market_db, resumed)
    assert 2 <= done < 6, f"the kill landed after {done} of 6 jobs; the test needs a partial sweep"
    # a job killed between its summary.json and its runs.parquet (the last file) is rerun
    reused_before = {p.parent.name: p.stat().st_mtime_ns for p in _complete(resumed)}
    # Act
    proc = run_cli("runner", _args(market_db, resumed))
    # Assert
    assert proc.returncode == 0, proc.stderr
    rows = _rows(resumed)
    assert _compared(rows) == _compared(_rows(whole))
    assert {r["job"] for r in rows if r["reused"] == "yes"} == set(reused_before)
    for job, mtime in reused_before.items():  # a reused job was not run again
        assert (resumed / job / "summary.json").stat().st_mtime_ns == mtime
    report = (resumed / "sweep_report.md").read_text()
    assert f"{len(reused_before)} of 6 job(s) were reused" in report


@pytest.mark.slow
def test_resume_when_the_db_version_changes_or_resume_is_off_then_every_job_reruns(
    market_db: Path, tmp_path: Path
) -> None:
    # Arrange
    db = tmp_path / "copy.duckdb"
    db.write_bytes(market_db.read_bytes())
    sweep_dir = tmp_path / "sweep"
    assert run_cli("runner", _args(db, sweep_dir)).returncode == 0
    again = run_cli("runner", _args(db, sweep_dir))
    again_rows = _rows(sweep_dir)
    forced = run_cli("runner", _args(db, sweep_dir, "run.resume=false"))
    forced_rows = _rows(sweep_dir)
    con = duckdb.connect(str(db))
    try:
        bump_content_version(con)
    finally:
        con.close()
    # Act
    bumped = run_cli("runner", _args(db, sweep_dir))
    # Assert
    assert again.returncode == forced.returncode == bumped.returncode == 0
    assert [r["reused"] for r in again_rows] == ["yes"] * 6  # same command again: all reused
    assert [r["reused"] for r in forced_rows] == [""] * 6  # run.resume=false: all rerun
    rows = _rows(sweep_dir)
    assert [r["reused"] for r in rows] == [""] * 6
    assert all(r["status"] == "completed" for r in rows)
    summaries = [json.loads((sweep_dir / r["job"] / "summary.json").read_text()) for r in rows]
    assert {s["market_db_version"] for s in summaries} == {2}  # a new DB version: all rerun


def test_job_identity_when_only_performance_keys_differ_then_it_is_the_same(tmp_path: Path) -> None:
    # Arrange
    base = ["+experiment=backtest", f"db.path={tmp_path / 'm.duckdb'}", "strategy.fast=5"]
    same = compose_config([*base, "market.chunk_size=100", "buffer=memory", "run.plot=true"])
    other = compose_config([*base[:2], "strategy.fast=6"])
    # Act
    ids = [resume.job_identity(compose_config(base), 1, "code")["identity"]]
    ids.append(resume.job_identity(same, 1, "code")["identity"])
    ids.append(resume.job_identity(other, 1, "code")["identity"])
    ids.append(resume.job_identity(compose_config(base), 2, "code")["identity"])
    ids.append(resume.job_identity(compose_config(base), 1, "code2")["identity"])
    # Assert
    assert ids[0] == ids[1]
    assert len(set(ids)) == 4  # behaviour, DB version and code version each change it


def test_reusable_when_the_run_was_halted_from_outside_then_it_is_rerun(tmp_path: Path) -> None:
    # Arrange
    identity = {"identity": "abc", "market_db_version": 1, "code_version": "x"}
    resume.start_attempt(tmp_path, identity)
    summary = {"status": "halted", "digest": "d", "kill_switch": {"code": "MANUAL"}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    # Act
    manual = resume.reusable(tmp_path, identity)
    summary["kill_switch"] = {"code": "MAX_DAILY_TRADES"}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    own = resume.reusable(tmp_path, identity)
    # Assert
    assert manual is None  # SIGUSR1 (submitit's time-limit warning) or the halt file: rerun
    assert own is not None and resume.reusable(tmp_path, {**identity, "identity": "other"}) is None


@pytest.mark.parametrize(
    ("damage", "reused"),
    [
        ("none", True),
        ("truncated", False),  # a part file cut short (a machine crash before the OS flushed it)
        ("empty", False),
        ("no runs file", False),
    ],
)
def test_reusable_when_parquet_results_are_not_whole_then_the_job_is_rerun(
    tmp_path: Path, damage: str, reused: bool
) -> None:
    # Arrange: a complete job whose Parquet results were written by the sweep buffer
    from components.execution.records import EquityRow
    from runner import job_cache

    identity = {"identity": "abc", "market_db_version": 1, "code_version": "x"}
    resume.start_attempt(tmp_path, identity)
    buffer = job_cache.ParquetWriteBuffer(100)
    buffer.open(tmp_path / "results")
    buffer.record_run_start(("r", "h", "db", 1), 0)
    for i in range(20):
        buffer.add("equity", EquityRow(i, 1.0, 2.0))
    buffer.end_loop(("r", "h", "db", 1), 0, "reporting", "d", None)
    buffer.record_status("r", "completed")
    (tmp_path / "summary.json").write_text(json.dumps({"status": "completed", "digest": "d"}))
    part = tmp_path / "results" / "equity-0000.parquet"
    if damage == "truncated":
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    elif damage == "empty":
        part.write_bytes(b"")
    elif damage == "no runs file":
        (tmp_path / "results" / "runs.parquet").unlink()
    # Act
    got = resume.reusable(tmp_path, identity)
    # Assert
    assert (got is not None) is reused
