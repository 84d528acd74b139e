"""runner/joblib_fork.py: Hydra's joblib launcher forks its workers (issue 13, parallel that scales)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from joblib import delayed

from runner import joblib_fork

MARKER = "__joblib_fork_test_marker__"


def _probe(callback: Any, payload: dict[str, Any]) -> tuple[int, bool, Any, int]:
    """Run in a worker: its pid, whether it inherited the parent's marker module, the callback's
    answer and the payload's identity-free content."""
    return os.getpid(), MARKER in sys.modules, callback(3), len(payload["rows"])


@pytest.fixture
def core(monkeypatch: pytest.MonkeyPatch) -> Any:
    from hydra_plugins.hydra_joblib_launcher import _core

    monkeypatch.setattr(_core, "Parallel", _core.Parallel)  # undone after the test
    monkeypatch.delenv(joblib_fork.ENV, raising=False)
    monkeypatch.setitem(sys.modules, MARKER, sys)  # only a forked worker has it
    assert joblib_fork.install()
    return _core


def test_parallel_when_hydra_asks_for_loky_then_workers_forked_and_args_passed_by_reference(
    core: Any,
) -> None:
    # Arrange: a local function and a lambda cannot be pickled by name (plain pickle)
    offset = 10
    callback = lambda x: x + offset  # noqa: E731
    payload = {"rows": list(range(5)), "unpicklable": lambda: None}
    # Act: what hydra_joblib_launcher._core.launch does
    runner = core.Parallel(n_jobs=2, backend="loky")
    got = runner(delayed(_probe)(callback, payload) for _ in range(4))
    # Assert
    assert isinstance(runner, joblib_fork._Forked)
    assert {pid for pid, *_ in got} - {os.getpid()} == {pid for pid, *_ in got}  # other processes
    assert all(inherited and answer == 13 and n == 5 for _, inherited, answer, n in got)
    assert joblib_fork._OBJECTS == {}  # nothing kept after the call


def test_parallel_when_env_asks_for_loky_then_hydras_backend(
    core: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(joblib_fork.ENV, "loky")
    runner = core.Parallel(n_jobs=2, backend="loky")
    assert not isinstance(runner, joblib_fork._Forked)
    assert joblib_fork.install()  # already installed: a second call changes nothing


def test_stop_flags_when_sigterm_kills_then_loop_keeps_default_sigterm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a forked pool worker (runner.startup.make_sigterm_kill) the loop's StopFlags leave
    SIGTERM at its default, so Pool.terminate ends a worker even mid-job; SIGINT still stops."""
    import signal

    from runner import startup
    from runner.engine import StopFlags

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    monkeypatch.setattr(startup, "_SIGTERM_KILLS", [])
    try:
        startup.make_sigterm_kill()
        flags = StopFlags()
        flags.install()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGINT) not in (before[signal.SIGINT], signal.SIG_DFL)
        flags.uninstall()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    monkeypatch.setattr(startup, "_SIGTERM_KILLS", [])
    flags = StopFlags()
    flags.install()  # outside a pool worker: the loop's graceful SIGTERM, as before
    try:
        assert signal.getsignal(signal.SIGTERM) not in (before[signal.SIGTERM], signal.SIG_DFL)
    finally:
        flags.uninstall()


def test_sweep_when_backend_env_unknown_then_one_line_exit_2_and_no_report(tmp_path: Path) -> None:
    from tests.helpers import make_market_db, run_cli, synthetic_bars

    db = make_market_db(tmp_path / "m.duckdb", synthetic_bars(1, 200, seed=3))
    sweep_dir = tmp_path / "sweep"
    proc = run_cli(
        "runner",
        [
            "-m",
            "+experiment=backtest",
            f"db.path={db}",
            f"hydra.sweep.dir={sweep_dir}",
            "strategy.fast=5,6",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
        ],
        env={joblib_fork.ENV: "lokyy"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: {joblib_fork.ENV}='lokyy' is not a joblib backend; use one of loky, "
        f"multiprocessing, sequential, threading (e.g. {joblib_fork.ENV}=loky for Hydra's own), "
        "or unset it to fork the workers"
    ]
    assert not (sweep_dir / "sweep_report.md").exists()  # no job started: no report


def test_write_report_when_sweep_dir_has_no_job_then_empty_report_not_an_error(
    tmp_path: Path,
) -> None:
    from runner import sweep

    report = sweep.write_report(tmp_path, None, plot=False)
    assert report.rows == [] and (tmp_path / "sweep_results.parquet").exists()
    assert report.verdict_line().startswith("sweep report: 0 job(s)")
