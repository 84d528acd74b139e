"""Fault injection (issue 6): real processes killed, interrupted and starved, real broken files.

Every run here is compared with one complete reference run of the same configuration: whatever
survives a fault must be a prefix of the reference's rows (in emission order) and hold only whole
committed batches; a clean stop must lose nothing at all.
"""

from __future__ import annotations

import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from components.errors import DbCorruptError, DbLockedError
from components.execution.records import TABLES
from components.execution.write_buffer import FlushError
from tests.helpers import REPO, make_market_db, results_rows, run_in_process, synthetic_bars

BATCH = 128  # small batches: many commits, so a kill can land anywhere
RUN_ARGS = [
    "+experiment=backtest",
    "run.progress=off",
    "run.plot=false",
    f"buffer.batch_size={BATCH}",
]
# Subprocesses log a ``metrics: steps N/...`` line after every chunk of 250 steps, so a test can
# strike at a chosen step instead of guessing from wall time (chunk_size is a performance key:
# the rows are the same as the reference run's).
PROGRESS_ARGS = ["market.chunk_size=250", "run.metrics_every_s=0.001"]
N_STEPS = 8000
_STEPS = re.compile(r"metrics: steps ([\d,]+)/")
TS_COLUMN = {
    "insights": 1,
    "signals": 1,
    "fills": 1,
    "denials": 1,
    "equity": 0,
    "trades": 4,
    "kill_switch_events": 0,
}


# -- fixtures and helpers --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def long_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four symbols x 8000 minute steps: ~12k result rows, ~95 commits, a loop of about 1-2 s."""
    path = tmp_path_factory.mktemp("market") / "market.duckdb"
    return make_market_db(path, synthetic_bars(n_symbols=4, n_steps=8000, seed=11))


@pytest.fixture(scope="module")
def reference(long_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The complete run every faulty run is compared with (in-process: same rows, no start-up)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    code, summary = run_in_process(run_dir, [f"db.path={long_db}", *RUN_ARGS[1:]])
    assert code == 0 and summary["status"] == "completed"
    assert summary["metrics"]["clock_steps"] == N_STEPS
    return {"summary": summary, "rows": all_rows(run_dir)}


def all_rows(run_dir: Path) -> dict[str, list[tuple]]:
    """Every results table of a run dir, in emission order."""
    return {table: results_rows(run_dir, table) for table in TABLES}


def runs_row(run_dir: Path) -> dict[str, Any]:
    con = duckdb.connect(str(run_dir / "results.duckdb"), read_only=True)
    try:
        cur = con.execute("SELECT * FROM runs")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        con.close()
    assert len(rows) == 1
    return dict(zip(names, rows[0], strict=True))


def runner_command(db: Path, run_dir: Path, *extra: str, module: str = "runner") -> list[str]:
    entry = ["-m", module] if module == "runner" else [str(REPO / "tests" / "fault_cli.py")]
    return [
        sys.executable,
        *entry,
        *RUN_ARGS,
        *PROGRESS_ARGS,
        f"db.path={db}",
        f"hydra.run.dir={run_dir}",
        *extra,
    ]


def start(
    command: Sequence[str],
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.Popen(
        list(command),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**full_env, **(env or {})},
        preexec_fn=preexec_fn,
    )


def wait_for_step(
    proc: subprocess.Popen[str], run_dir: Path, step: int, timeout: float = 120
) -> None:
    """Return once runner.log reports at least ``step`` clock steps done (the loop is running)."""
    log, deadline = run_dir / "runner.log", time.monotonic() + timeout
    while True:
        text = log.read_text() if log.exists() else ""
        done = [int(m.replace(",", "")) for m in _STEPS.findall(text)]
        if done and max(done) >= step:
            return
        if proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"runner exited with {proc.returncode} before step {step}:\n{err}")
        assert time.monotonic() < deadline, f"runner did not reach step {step} in time"
        time.sleep(0.005)


def assert_prefix(rows: dict[str, list[tuple]], reference: dict[str, list[tuple]]) -> None:
    for table, got in rows.items():
        assert got == reference[table][: len(got)], (
            f"{table}: rows are not a prefix of the reference run"
        )


def assert_consistent(rows: dict[str, list[tuple]]) -> None:
    """Cross-table references hold: nothing points at a row that was not committed."""
    insights = {r[0] for r in rows["insights"]}
    signals = {r[0] for r in rows["signals"]}
    assert {r[6] for r in rows["signals"]} <= insights, "a signal lost its insight"
    assert {r[7] for r in rows["fills"]} <= signals, "a fill references a missing signal"
    assert {r[8] for r in rows["denials"]} <= signals, "a denial references a missing signal"


def rows_up_to(
    reference: dict[str, list[tuple]], stop: datetime, inclusive: dict[str, bool]
) -> dict[str, list]:
    """The reference rows emitted up to ``stop``: ts < stop, or <= for tables in ``inclusive``."""
    out = {}
    for table, rows in reference.items():
        col = TS_COLUMN[table]
        out[table] = [
            r for r in rows if r[col] < stop or (inclusive.get(table, False) and r[col] == stop)
        ]
    return out


def committed(rows: dict[str, list[tuple]]) -> int:
    return sum(len(r) for r in rows.values())


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "ERROR" in line or line.startswith("error:")]


# -- SIGKILL -----------------------------------------------------------------------------------
def sigkill_trial(
    db: Path, run_dir: Path, step: int, delay_s: float
) -> tuple[int, dict[str, list[tuple]], str]:
    """Start a run, SIGKILL it ``delay_s`` after step ``step``; return (exit code, surviving rows, status)."""
    proc = start(runner_command(db, run_dir))
    wait_for_step(proc, run_dir, step)
    time.sleep(delay_s)
    proc.kill()
    proc.communicate()
    return proc.returncode, all_rows(run_dir), runs_row(run_dir)["status"]


def run_sigkill_trials(
    n_trials: int, seed: int, long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: seeded kill points spread over the loop: a step, then up to 30 ms more. The last
    # 3,000 steps stay clear: with four runs on two cores the log's step count lags the loop, and
    # a kill that lands once the loop has ended finds the run 'reporting', not 'running'
    rng = random.Random(seed)
    points = [(rng.randrange(0, N_STEPS - 3000), rng.uniform(0.0, 0.03)) for _ in range(n_trials)]
    # Act: up to four runs at a time
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda i: sigkill_trial(long_db, tmp_path / f"kill{i}", *points[i]), range(n_trials)
            )
        )
    # Assert
    total = committed(reference["rows"])
    for i, (code, rows, status) in enumerate(results):
        assert code == -signal.SIGKILL, f"trial {i} was not killed (kill point {points[i]})"
        assert status == "running", f"trial {i}: runs.status must stay 'running' after SIGKILL"
        assert_prefix(rows, reference["rows"])
        assert_consistent(rows)
        assert committed(rows) % BATCH == 0, (
            f"trial {i}: {committed(rows)} rows is not a whole number of batches"
        )
        assert committed(rows) < total
    survived = [committed(rows) for _, rows, _ in results]
    assert len(set(survived)) > 1, f"kills did not land at different points: {survived}"


def test_sigkill_when_five_random_points_then_only_whole_committed_batches_survive(
    long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    run_sigkill_trials(5, 6, long_db, reference, tmp_path)


@pytest.mark.slow
def test_sigkill_when_twenty_random_points_then_only_whole_committed_batches_survive(
    long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    run_sigkill_trials(20, 2024, long_db, reference, tmp_path)


# -- SIGTERM / SIGINT ------------------------------------------------------------------------------
def stop_trial(db: Path, run_dir: Path, signum: int, step: int) -> subprocess.CompletedProcess[str]:
    proc = start(runner_command(db, run_dir))
    wait_for_step(proc, run_dir, step)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_stop_trials(
    signum: int,
    exit_code: int,
    n_trials: int,
    long_db: Path,
    reference: dict[str, Any],
    tmp_path: Path,
) -> None:
    # Arrange: seeded stop points spread over the loop, run side by side
    rng = random.Random(int(signum) * 1000 + n_trials)
    steps = [rng.randrange(0, N_STEPS - 1500) for _ in range(n_trials)]
    # Act
    with ThreadPoolExecutor(max_workers=3) as pool:
        done = list(
            pool.map(
                lambda i: stop_trial(long_db, tmp_path / f"stop{i}", signum, steps[i]),
                range(n_trials),
            )
        )
    # Assert
    for i, proc in enumerate(done):
        run_dir = tmp_path / f"stop{i}"
        assert proc.returncode == exit_code, proc.stderr
        assert "Traceback" not in proc.stderr
        summary = pd.read_json(run_dir / "summary.json", typ="series")
        assert summary["status"] == "interrupted" and summary["stopped_at"]
        stopped_at = pd.Timestamp(summary["stopped_at"])
        assert f"stopped at {summary['stopped_at']}" in proc.stderr
        row = runs_row(run_dir)
        assert row["status"] == "interrupted" and pd.Timestamp(row["stopped_at_ts"]) == stopped_at
        rows = all_rows(run_dir)
        expected = rows_up_to(reference["rows"], stopped_at, dict.fromkeys(TABLES, True))
        assert (
            rows == expected
        )  # zero rows lost: every step up to stopped_at is whole, nothing after
        assert {t: len(rows[t]) for t in summary["record_counts"]} == dict(summary["record_counts"])
        assert 0 < len(rows["equity"]) < len(reference["rows"]["equity"])


STOP_SIGNALS = [(signal.SIGTERM, 143), (signal.SIGINT, 130)]


@pytest.mark.parametrize(("signum", "exit_code"), STOP_SIGNALS, ids=["SIGTERM", "SIGINT"])
def test_stop_signal_when_mid_run_then_nothing_lost_status_interrupted_and_conventional_exit_code(
    signum: int, exit_code: int, long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    run_stop_trials(signum, exit_code, 1, long_db, reference, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "exit_code"), STOP_SIGNALS, ids=["SIGTERM", "SIGINT"])
def test_stop_signal_when_three_random_points_then_nothing_lost_each_time(
    signum: int, exit_code: int, long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    run_stop_trials(signum, exit_code, 3, long_db, reference, tmp_path)


# -- exception inside the strategy --------------------------------------------------------------
def test_strategy_exception_when_in_process_then_records_before_it_flushed_and_run_failed(
    long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange
    k = 3001
    stamps = [r[0] for r in reference["rows"]["equity"]]

    def explode(engine: Any, step: int, ts: int) -> None:
        if step == k:
            raise RuntimeError(f"injected fault at step {step}")

    # Act
    with pytest.raises(RuntimeError, match=r"^injected fault at step 3001$"):
        run_in_process(tmp_path / "run", [f"db.path={long_db}", *RUN_ARGS[1:]], engine_hook=explode)
    # Assert
    rows = all_rows(tmp_path / "run")
    assert rows == rows_up_to(reference["rows"], stamps[k], {})
    row = runs_row(tmp_path / "run")
    assert (
        row["status"] == "failed" and row["message"] == "RuntimeError: injected fault at step 3001"
    )
    assert pd.Timestamp(row["stopped_at_ts"]) == stamps[k - 1]
    assert "Traceback" in (tmp_path / "run" / "runner.log").read_text()


def test_strategy_exception_when_cli_then_one_error_line_exit_1_traceback_only_in_log(
    long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: tests/fault_cli.py registers strategy 'explode' (sma_cross raising at step k)
    k = 3000
    run_dir = tmp_path / "run"
    stamps = [r[0] for r in reference["rows"]["equity"]]
    # Act
    proc = start(
        runner_command(long_db, run_dir, "strategy=explode", module="fault_cli"),
        env={"FAULT_EXPLODE_AT_STEP": str(k)},
    )
    out, err = proc.communicate(timeout=120)
    # Assert
    assert proc.returncode == 1
    assert "Traceback" not in err and "Traceback" not in out
    assert error_lines(err) == [line for line in err.splitlines() if "run failed" in line]
    assert len(error_lines(err)) == 1
    assert error_lines(err)[0].endswith(
        f"run failed: StrategyExploded: injected fault at clock step {k} "
        f"(traceback in {run_dir / 'runner.log'})"
    )
    assert "Traceback" in (run_dir / "runner.log").read_text()
    # the strategy raised after step k's fills and equity mark: those were emitted, and kept
    rows = all_rows(run_dir)
    assert rows == rows_up_to(
        reference["rows"], stamps[k], {"fills": True, "equity": True, "trades": True}
    )
    assert runs_row(run_dir)["status"] == "failed"


# -- a commit that fails -------------------------------------------------------------------------
class FailingCommits:
    """Wrap a DuckDB connection so every COMMIT fails like a full disk (all else passes through)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.commits_refused = 0

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.strip().upper() == "COMMIT":
            self.commits_refused += 1
            raise duckdb.IOException(
                'Could not write file "results.duckdb.wal": No space left on device'
            )
        # DuckDB's replacement scan finds the Arrow batch among the locals of execute's caller
        _wb_batch = sys._getframe(1).f_locals.get("_wb_batch")
        return self._con.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def assert_refused_rows_follow_committed(buffer: Any, rows: dict, reference: dict) -> None:
    """The rows still in memory are exactly the rows right after the committed prefix."""
    for table, pending in buffer.pending.items():  # rows are identified by seq, or ts for equity
        stored = [
            r[0]
            for r in reference["rows"][table][len(rows[table]) : len(rows[table]) + len(pending)]
        ]
        kept = [
            pd.Timestamp(r[0], unit="us", tz="UTC") if table == "equity" else r[0] for r in pending
        ]
        assert kept == stored, (
            f"{table}: the refused batch is not the rows right after the committed ones"
        )


def test_failed_commit_when_disk_full_then_rolled_back_rows_kept_and_run_fails_loudly(
    long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: from step 2000 on, every COMMIT of the results DB fails (synchronous flushes)
    seen: dict[str, Any] = {}

    def fill_disk(engine: Any, step: int, ts: int) -> None:
        if step == 2000:
            seen["buffer"] = engine.buffer
            seen["con"] = engine.buffer.con = FailingCommits(engine.buffer.con)

    # Act
    with pytest.raises(FlushError) as raised:
        run_in_process(
            tmp_path / "run",
            [f"db.path={long_db}", *RUN_ARGS[1:], "buffer.background=false"],
            engine_hook=fill_disk,
        )
    # Assert: the error names the file and the fix
    results = tmp_path / "run" / "results.duckdb"
    assert str(raised.value) == (
        f"could not commit {BATCH} buffered row(s) to {results} (Could not write file "
        '"results.duckdb.wal": No space left on device); the rows are kept in memory and the run stops. '
        "Free disk space or fix permissions, then rerun."
    )
    # ... it gave up after the failing flush and one retry at shutdown, instead of looping
    assert seen["con"].commits_refused == 2
    # ... the refused batch is still in memory, whole, and exactly the rows after the committed
    # prefix; behind it, the equity rows of the steps the loop marked in its chunk before the error
    # (the engine hands a chunk's equity rows over when the chunk ends; on an error it queues them)
    buffer, rows = seen["buffer"], all_rows(tmp_path / "run")
    assert buffer.n_pending >= BATCH
    assert buffer.n_pending - len(buffer.pending["equity"]) <= BATCH
    assert committed(rows) % BATCH == 0
    assert_prefix(rows, reference["rows"])
    assert_refused_rows_follow_committed(buffer, rows, reference)
    assert runs_row(tmp_path / "run")["status"] == "failed"


def test_failed_commit_when_disk_full_under_background_writer_then_batch_put_back_and_run_fails(
    long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange: from step 2000 on, every COMMIT fails, on the writer thread's cursor and the main one
    seen: dict[str, Any] = {}

    def fill_disk(engine: Any, step: int, ts: int) -> None:
        if step == 2000:
            buffer = seen["buffer"] = engine.buffer
            assert buffer._writer is not None, "buffer.background is on by default"
            buffer._wait_in_flight()  # the batch already handed over commits on the real disk
            seen["writer"] = buffer._writer_con = FailingCommits(buffer._writer_con)
            seen["con"] = buffer.con = FailingCommits(buffer.con)

    # Act
    with pytest.raises(FlushError) as raised:
        run_in_process(
            tmp_path / "run", [f"db.path={long_db}", *RUN_ARGS[1:]], engine_hook=fill_disk
        )
    # Assert: the failure of the batch in flight stops the run at the next flush, loudly
    results = tmp_path / "run" / "results.duckdb"
    assert str(raised.value).startswith("could not commit ")
    assert f"buffered row(s) to {results} (Could not write file" in str(raised.value)
    assert seen["writer"].commits_refused == 1
    # ... the refused batch was put back in front of the later rows: nothing lost, in order
    buffer, rows = seen["buffer"], all_rows(tmp_path / "run")
    assert buffer.n_pending >= BATCH
    assert committed(rows) % BATCH == 0
    assert_prefix(rows, reference["rows"])
    assert_refused_rows_follow_committed(buffer, rows, reference)
    assert runs_row(tmp_path / "run")["status"] == "failed"


def test_failed_commit_when_file_size_limit_hit_then_exit_1_and_message_names_the_file(
    long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    """A real write failure: RLIMIT_FSIZE makes the WAL write fail with EFBIG, as a full disk would."""
    # Arrange
    run_dir = tmp_path / "run"

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    # Act
    proc = start(runner_command(long_db, run_dir), preexec_fn=limit_file_size)
    _out, err = proc.communicate(timeout=120)
    # Assert
    assert proc.returncode == 1
    assert "Traceback" not in err
    lines = error_lines(err)
    # the refused batch, plus the next one when the writer thread's batch failed (background)
    kept = re.match(r"error: could not commit (\d+) buffered row\(s\) to (.*?) \(", lines[0])
    assert len(lines) == 1 and kept is not None, lines
    assert BATCH <= int(kept[1]) <= 2 * BATCH and kept[2] == str(run_dir / "results.duckdb")
    assert "File too large" in lines[0] and lines[0].endswith(
        "Free disk space or fix permissions, then rerun."
    )
    rows = all_rows(run_dir)
    assert committed(rows) % BATCH == 0 and committed(rows) > 0
    assert_prefix(rows, reference["rows"])
    assert_consistent(rows)


# -- broken or busy market DB ------------------------------------------------------------------
def _truncated_late(path: Path, good: Path) -> None:
    """Cut after the header: DuckDB opens it, then fails reading the blocks of the first query."""
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _truncated_header(path: Path, good: Path) -> None:
    path.write_bytes(good.read_bytes()[:4096])


def _garbage(path: Path, good: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(300_000))


def _csv(path: Path, good: Path) -> None:
    path.write_text("symbol,ts,open,high,low,close,volume\nAAA,2024-01-01,1,1,1,1,1\n")


def _empty(path: Path, good: Path) -> None:
    path.write_bytes(b"")


DAMAGES = {
    "truncated_late": _truncated_late,
    "truncated_header": _truncated_header,
    "garbage": _garbage,
    "csv": _csv,
    "empty": _empty,
}
CORRUPT_MESSAGE = (
    "{path} is not a readable DuckDB database (truncated, damaged or another file type); "
    "rebuild it with `python -m producers.demo db.path={path}` (synthetic) or "
    "`python -m producers.ingest source=<file> db.path={path}`."
)

CSV_MESSAGE = (
    "{path} is not a readable DuckDB database (it is a CSV file); ingest it into a market DB with "
    "`python -m producers.ingest source={path} db.path=outputs/market/<name>.duckdb` and point "
    "db.path at that file."
)


@pytest.mark.parametrize("damage", list(DAMAGES.values()), ids=list(DAMAGES))
def test_run_backtest_when_market_db_damaged_then_corrupt_error_names_file_and_fix(
    damage: Callable[[Path, Path], None], long_db: Path, tmp_path: Path
) -> None:
    # Arrange
    bad = tmp_path / "market.duckdb"
    damage(bad, long_db)
    before = bad.read_bytes()
    # Act / Assert
    message = CORRUPT_MESSAGE if damage is not _csv else CSV_MESSAGE  # issue 14: a CSV is named
    with pytest.raises(DbCorruptError, match=f"^{re.escape(message.format(path=bad))}$"):
        run_in_process(tmp_path / "run", [f"db.path={bad}", *RUN_ARGS[1:]])
    assert bad.read_bytes() == before  # nothing written to the market DB


def test_runner_cli_when_market_db_truncated_then_one_line_exit_2_no_traceback(
    long_db: Path, tmp_path: Path
) -> None:
    # Arrange: the late truncation used to escape as an IOException: exit 1, no traceback in the log
    bad = tmp_path / "market.duckdb"
    _truncated_late(bad, long_db)
    # Act
    proc = subprocess.run(
        runner_command(bad, tmp_path / "run"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"},
    )
    # Assert
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert error_lines(proc.stderr) == ["error: " + CORRUPT_MESSAGE.format(path=bad)]


def test_run_backtest_when_market_db_held_read_write_by_another_process_then_locked_error_names_pid(
    long_db: Path, tmp_path: Path
) -> None:
    # Arrange: another process opens the market DB read-write and keeps it open
    held = tmp_path / "market.duckdb"
    held.write_bytes(long_db.read_bytes())
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True);"
            " time.sleep(120)",
            str(held),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    expected = (
        f"{held} (db.path) is locked by another process (PID {holder.pid}) that has it open for writing; "
        f"DuckDB admits readers only when no writer is open, so wait for PID {holder.pid} to finish or stop "
        "it, then retry."
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        # Act / Assert (the CLI prints this one line and exits 2, like every DbLockedError)
        with pytest.raises(DbLockedError, match=f"^{re.escape(expected)}$"):
            run_in_process(tmp_path / "run", [f"db.path={held}", *RUN_ARGS[1:]])
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "run" / "results.duckdb").exists()


# -- halting from outside ------------------------------------------------------------------------
def halt_trial(
    db: Path, run_dir: Path, how: str, step: int
) -> tuple[subprocess.CompletedProcess[str], float]:
    proc = start(runner_command(db, run_dir))
    wait_for_step(proc, run_dir, step)
    asked = time.time()
    if how == "file":
        (run_dir / "HALT").write_text("ops: halt before the close\n")
    else:
        proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), asked


@pytest.mark.parametrize(
    ("how", "actor", "reason"),
    [("file", "halt_file", "ops: halt before the close"), ("signal", "signal", "signal SIGUSR1")],
)
def test_halt_from_outside_when_mid_run_then_kill_switch_halts_promptly_and_nothing_fills_after(
    how: str, actor: str, reason: str, long_db: Path, reference: dict[str, Any], tmp_path: Path
) -> None:
    # Arrange
    run_dir = tmp_path / "run"
    # Act
    proc, asked = halt_trial(long_db, run_dir, how, 2000)
    # Assert: exit 0 and status halted, like activate_kill_switch
    assert proc.returncode == 0, proc.stderr
    summary = pd.read_json(run_dir / "summary.json", typ="series")
    assert summary["status"] == "halted" and summary["kill_switch"]["code"] == "MANUAL"
    events = results_rows(run_dir, "kill_switch_events")
    assert [(e[2], e[3], e[4], e[5], e[8]) for e in events] == [
        ("active", "halted", "MANUAL", reason, actor)
    ]
    halted_at, halted_wall = events[0][0], events[0][1]
    assert halted_wall.timestamp() - asked < 0.5  # prompt: well within half a second of wall time
    assert not [f for f in results_rows(run_dir, "fills") if f[1] >= halted_at]
    signals_after = {s[0] for s in results_rows(run_dir, "signals") if s[1] >= halted_at}
    assert signals_after and signals_after <= {d[8] for d in results_rows(run_dir, "denials")}
    assert runs_row(run_dir)["status"] == "halted"
