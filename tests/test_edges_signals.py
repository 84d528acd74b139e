"""Signals during start-up and SIGKILL while the report is written (issue 14, items 2, 3 and 4).

``RUNNER_TEST_PAUSE=<phase>:<seconds>`` makes the runner print ``test pause: <phase>`` and wait at
that phase (``imports``: right after the handlers are installed, before Hydra is imported;
``plan``: after the plan, before the "to halt" hint; ``report``: after the loop, while
``runs.status`` is ``reporting``), so each signal lands at a known point. All cases run at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from tests.helpers import REPO, make_market_db, read_shared_csv

GOOG_CSV = "goog_daily_2004_2013.csv"
FIRST_BAR = "2004-08-19"

# name -> (pause phase, signal sent when the pause is reached)
CASES = {
    "usr1_during_imports": ("imports", signal.SIGUSR1),
    "usr1_during_plan": ("plan", signal.SIGUSR1),
    "int_during_imports": ("imports", signal.SIGINT),
    "term_during_imports": ("imports", signal.SIGTERM),
    "int_during_plan": ("plan", signal.SIGINT),
    "term_during_plan": ("plan", signal.SIGTERM),
    "kill_during_report": ("report", signal.SIGKILL),
}


@dataclass
class Outcome:
    code: int
    stderr_lines: list[str]
    run_dir: Path


def _launch(db: Path, run_dir: Path, phase: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["RUNNER_TEST_PAUSE"] = f"{phase}:60"
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "+experiment=backtest",
            f"db.path={db}",
            f"hydra.run.dir={run_dir}",
            "run.plot=false",
        ],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _signal_at_pause(proc: subprocess.Popen[str], phase: str, signum: int) -> list[str]:
    """Read stderr until ``test pause: <phase>``, send ``signum``; return the lines read so far."""
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if line.strip() == f"test pause: {phase}":
            proc.send_signal(signum)
            return lines
    raise AssertionError(f"never reached the {phase} pause; stderr so far: {lines}")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    tmp = tmp_path_factory.mktemp("signals")
    db = make_market_db(tmp / "goog.duckdb", read_shared_csv(GOOG_CSV))
    procs = {}
    for name, (phase, _signum) in CASES.items():
        procs[name] = (_launch(db, tmp / name / "run", phase), tmp / name / "run")
    results = {}
    for name, (proc, run_dir) in procs.items():
        phase, signum = CASES[name]
        head = _signal_at_pause(proc, phase, signum)
        _out, rest = proc.communicate(timeout=240)
        results[name] = Outcome(proc.returncode, head + rest.splitlines(), run_dir)
    yield results


def _runs_row(run_dir: Path) -> tuple[str, str | None]:
    con = duckdb.connect(str(run_dir / "results.duckdb"), read_only=True)
    try:
        return con.execute("SELECT status, digest FROM runs").fetchone()  # type: ignore[return-value]
    finally:
        con.close()


@pytest.mark.parametrize("name", ["usr1_during_imports", "usr1_during_plan"])
def test_runner_when_usr1_during_startup_then_halts_at_first_bar_issue14_item2(
    outcomes: dict[str, Outcome], name: str
) -> None:
    outcome = outcomes[name]
    assert outcome.code == 0, outcome.stderr_lines
    assert not any("Traceback" in line for line in outcome.stderr_lines)
    con = duckdb.connect(str(outcome.run_dir / "results.duckdb"), read_only=True)
    try:
        events = con.execute(
            "SELECT strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d'), state_to, reason FROM kill_switch_events"
        ).fetchall()
        status = con.execute("SELECT status FROM runs").fetchone()
        trades = con.execute("SELECT count(*) FROM trades").fetchone()
    finally:
        con.close()
    assert events[0] == (FIRST_BAR, "halted", "signal SIGUSR1")
    assert status == ("halted",) and trades == (0,)
    # the hint is printed only after the handler is in place
    assert any("to halt: touch" in line and "kill -USR1" in line for line in outcome.stderr_lines)


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("int_during_imports", 130, "error: interrupted by Ctrl-C; nothing further was written."),
        ("int_during_plan", 130, "error: interrupted by Ctrl-C; nothing further was written."),
        (
            "term_during_imports",
            143,
            "error: stopped by SIGTERM before the run started; nothing further was written.",
        ),
        (
            "term_during_plan",
            143,
            "error: stopped by SIGTERM before the run started; nothing further was written.",
        ),
    ],
)
def test_runner_when_int_or_term_during_startup_then_one_line_and_128_plus_n_issue14_item3(
    outcomes: dict[str, Outcome], name: str, code: int, message: str
) -> None:
    outcome = outcomes[name]
    lines = [line for line in outcome.stderr_lines if not line.startswith("test pause:")]
    assert outcome.code == code, outcome.stderr_lines
    assert lines == [message]
    assert not outcome.run_dir.exists()  # item 18: the stub run dir is removed


def test_runner_when_killed_while_writing_report_then_status_reporting_issue14_item4(
    outcomes: dict[str, Outcome],
) -> None:
    outcome = outcomes["kill_during_report"]
    assert outcome.code == -signal.SIGKILL
    status, digest = _runs_row(outcome.run_dir)
    assert status == "reporting" and digest  # the loop finished; the report did not
    assert not (outcome.run_dir / "summary.json").exists()


def test_runner_when_report_written_then_status_is_the_outcome_issue14_item4(
    outcomes: dict[str, Outcome],
) -> None:
    """The same runs row after a run whose report completed: 'halted' only once summary.json exists."""
    outcome = outcomes["usr1_during_plan"]
    assert (outcome.run_dir / "summary.json").exists()
    assert _runs_row(outcome.run_dir)[0] == "halted"
