"""Config-validated CI runs: ``python -m runner.check_config`` and ``run.dry_run=true`` (issue 5)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from components.cli import run_cli as run_cli_in_process
from runner import check_config
from tests.helpers import CONF_DIR, make_market_db, run_cli, synthetic_bars, synthetic_snapshots

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bars = synthetic_bars(3, 300, seed=5)
    return make_market_db(
        tmp_path_factory.mktemp("check_db") / "market.duckdb", bars, synthetic_snapshots(bars)
    )


@pytest.fixture(scope="module")
def bars_only_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(
        tmp_path_factory.mktemp("bars_db") / "market.duckdb", synthetic_bars(3, 300, seed=5)
    )


def _conf_copy_with(tmp_path: Path, name: str, body: str) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "experiment" / f"{name}.yaml").write_text("# @package _global_\n" + body)
    return conf


def test_check_config_when_every_experiment_is_valid_then_exit_0_and_nothing_is_written(
    market_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Arrange
    monkeypatch.chdir(tmp_path)
    before = market_db.stat().st_mtime_ns
    # Act
    code = check_config.main(["--db", str(market_db)])
    # Assert
    out = capsys.readouterr().out
    assert code == 0, out
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [
        ["ok", name] for name in EXPERIMENTS
    ]
    assert market_db.stat().st_mtime_ns == before
    assert list(tmp_path.iterdir()) == []  # no run dir, no results DB


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("market:\n  chunk_size: abc\n", "market.chunk_size"),
        (
            "execution:\n  kill_switch:\n    max_daily_trades: -5\n",
            "execution.kill_switch.max_daily_trades",
        ),
        ("strategy:\n  fastt: 3\n", "strategy.fastt"),
        ("defaults:\n  - override /market: chunkd\n", "market=chunkd"),
        ("start: 2030-01-01\n", "start=2030-01-01"),
    ],
)
def test_check_config_when_an_experiment_file_is_broken_then_exit_2_naming_experiment_and_key(
    body: str, key: str, market_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    conf = _conf_copy_with(tmp_path, "broken", body)
    # Act
    code = check_config.main(
        [
            "--db",
            str(market_db),
            "--config-dir",
            str(conf),
            "--experiment",
            "broken",
            "--experiment",
            "backtest",
        ]
    )
    # Assert
    captured = capsys.readouterr()
    assert code == 2
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith(
        f"error: check-config: experiment broken ({conf}/experiment/"
    )
    assert key in errors[0]
    assert [line.split()[:2] for line in captured.out.splitlines()[1:]] == [
        ["FAIL", "broken"],
        ["ok", "backtest"],
    ]


def test_check_config_when_strategy_reads_analytics_and_db_has_none_then_it_fails(
    bars_only_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = check_config.main(["--db", str(bars_only_db), "--experiment", "momentum"])
    assert code == 2
    assert (
        "strategy.kind=momentum_rotation reads analytics snapshots, but the market DB"
        in capsys.readouterr().err
    )


def test_check_config_when_an_override_is_bad_then_every_experiment_fails_with_exit_2(
    market_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = check_config.main(["--db", str(market_db), "market.chunk_size=0"])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(errors) == len(EXPERIMENTS)
    assert all(
        "market.chunk_size must be a positive number of timestamps per query, was 0" in e
        for e in errors
    )


def test_check_config_when_db_is_missing_then_cli_exits_2_with_the_fix(tmp_path: Path) -> None:
    proc = run_cli(
        "runner.check_config", ["--db", str(tmp_path / "none.duckdb"), "--experiment", "backtest"]
    )
    assert proc.returncode == 2
    assert f"market DB not found at {tmp_path / 'none.duckdb'} (db.path)" in proc.stderr
    assert "Traceback" not in proc.stderr


def _runner(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run ``python -m runner args`` in this process (Hydra + run_cli) and return its exit code."""
    from runner.__main__ import main

    monkeypatch.setattr(sys, "argv", ["runner", *args])
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    try:
        run_cli_in_process(main)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("market.chunk_size=abc", "market.chunk_size"),
        ("market=chunky", "Did you mean 'chunked'?"),
        ("execution.kill_switch.max_daily_trades=-1", "execution.kill_switch.max_daily_trades"),
        ("run.progress=sometimes", "run.progress must be one of"),
        ("db.mode=read_write", "db.mode='read_write'"),
        ("buffer.batch_sise=10", "batch_sise"),
    ],
)
def test_dry_run_when_an_override_is_bad_then_exit_2_with_one_line(
    override: str,
    message: str,
    market_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Act
    code = _runner(
        [
            "+experiment=backtest",
            "run.dry_run=true",
            f"db.path={market_db}",
            f"hydra.run.dir={tmp_path / 'run'}",
            override,
        ],
        monkeypatch,
    )
    # Assert
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "run" / "results.duckdb").exists()


def test_dry_run_when_config_is_valid_then_plan_printed_and_no_results_db(
    market_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = _runner(
        [
            "+experiment=backtest",
            "run.dry_run=true",
            f"db.path={market_db}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        monkeypatch,
    )
    assert code == 0
    assert capsys.readouterr().out.startswith("dry run OK: plan: ")
    assert not (tmp_path / "run" / "results.duckdb").exists()
    assert not (
        tmp_path / "run" / "sweep_job.json"
    ).exists()  # the sweep callback ignores single runs
