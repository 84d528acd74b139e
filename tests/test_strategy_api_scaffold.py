"""``python -m runner.scaffold NAME`` writes a plugin (module, YAML, test) that works as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import make_market_db, run_cli, synthetic_bars


def scaffold(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("runner.scaffold", list(args), cwd=cwd)


def test_scaffold_when_name_given_then_module_yaml_and_test_are_written_and_the_strategy_runs(
    tmp_path: Path,
) -> None:
    # Arrange
    db = make_market_db(tmp_path / "m.duckdb", synthetic_bars(n_symbols=2, n_steps=200, seed=2))
    # Act
    made = scaffold(tmp_path, "my_breakout", "--into", "research/strategies")
    # Assert
    assert made.returncode == 0, made.stderr
    package = tmp_path / "research" / "strategies"
    for path in (
        "__init__.py",
        "my_breakout.py",
        "conf/strategy/my_breakout.yaml",
        "test_my_breakout.py",
    ):
        assert (package / path).exists(), path
    assert (tmp_path / "research" / "__init__.py").exists()
    assert "RUNNER_PLUGINS=research.strategies.my_breakout python -m runner" in made.stdout
    proc = run_cli(
        "runner",
        [
            "+experiment=backtest",
            f"db.path={db}",
            "strategy=my_breakout",
            "strategy.window=5",
            "hydra.searchpath=[file://research/strategies/conf]",
            f"hydra.run.dir={tmp_path / 'run'}",
            "run.plot=false",
        ],
        cwd=tmp_path,
        env={"RUNNER_PLUGINS": "research.strategies.my_breakout", "PYTHONPATH": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["strategy"] == "my_breakout" and summary["n_trades"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["My-Strategy"],
            r"^error: scaffold: 'My-Strategy' is not a valid strategy name; use lower-case",
        ),
        (["sma_cross"], r"^error: scaffold: strategy 'sma_cross' already exists \(built in\)"),
        (["ok_name", "--into", "/abs"], r"^error: scaffold: --into '/abs' must be a relative path"),
    ],
)
def test_scaffold_when_name_or_target_bad_then_one_line_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    proc = scaffold(tmp_path, *args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert re.match(message, proc.stderr), proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_scaffold_when_run_twice_then_unchanged_and_an_edited_file_is_never_overwritten(
    tmp_path: Path,
) -> None:
    assert scaffold(tmp_path, "again").returncode == 0
    again = scaffold(tmp_path, "again")
    assert again.returncode == 0 and "already in place (unchanged)" in again.stdout
    module = tmp_path / "plugins" / "again.py"
    module.write_text("# mine\n")
    proc = scaffold(tmp_path, "again")
    assert proc.returncode == 2 and "already exists and differs from the skeleton" in proc.stderr
    assert module.read_text() == "# mine\n"


@pytest.mark.slow
def test_scaffold_when_generated_test_runs_then_it_passes(tmp_path: Path) -> None:
    """The written test (plugin run + chunk-size/provider parity) passes as generated."""
    assert scaffold(tmp_path, "fresh_idea").returncode == 0
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "plugins/test_fresh_idea.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
