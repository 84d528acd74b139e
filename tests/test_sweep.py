"""Multirun sweeps prove parity: the sweep report callback, presets and launchers (issue 5).

Each sweep is a real ``python -m runner -m ...`` subprocess over a small synthetic market DB, so
the exit code is the one a user or CI sees (Hydra + ``components.cli.run_cli``).
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner.sweep import (
    PARITY_EXIT_CODE,
    JobRow,
    check_parity,
    describe_launcher,
    duplicate_configs,
)
from tests.helpers import REPO, make_market_db, run_cli, synthetic_bars

LOOKAHEAD_ENV = {
    "RUNNER_PLUGINS": "tests.plugins.lookahead_market"
}  # never imported here: it registers
LOOKAHEAD_CONF = REPO / "tests" / "plugins" / "conf"  # market/lookahead.yaml


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three symbols x 300 minute bars with holes; no analytics snapshots."""
    return make_market_db(
        tmp_path_factory.mktemp("sweep_db") / "market.duckdb", synthetic_bars(3, 300, seed=11)
    )


def _sweep(
    db: Path,
    sweep_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "runner",
        [
            "-m",
            "+experiment=backtest",
            f"db.path={db}",
            "run.plot=false",
            *([f"hydra.sweep.dir={sweep_dir}"] if sweep_dir else []),
            *args,
        ],
        cwd=cwd,
        env=env,
    )


def _report_rows(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "sweep_report.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_sweep_when_chunk_sizes_vary_then_digests_match_and_report_is_written(
    market_db: Path, tmp_path: Path
) -> None:
    """`python -m runner -m +experiment=backtest market.chunk_size=100,1000,10000` works as written."""
    # Arrange
    sweep_dir = tmp_path / "sweep"
    # Act
    proc = _sweep(market_db, sweep_dir, "market.chunk_size=100,1000,10000")
    # Assert
    assert proc.returncode == 0, proc.stderr
    rows = _report_rows(sweep_dir)
    assert [r["overrides"].split()[-1] for r in rows] == [
        f"market.chunk_size={n}" for n in (100, 1000, 10000)
    ]
    assert len({r["digest"] for r in rows}) == 1 and len(rows[0]["digest"]) == 64
    assert {r["status"] for r in rows} == {"completed"} and {r["parity"] for r in rows} == {"ok"}
    assert all(float(r["bars_per_second"]) > 0 and float(r["peak_rss_mb"]) > 0 for r in rows)
    assert [int(r["market_db_queries"]) for r in rows] == [
        3,
        1,
        1,
    ]  # 300 steps: ceil(300 / chunk_size)
    assert "**OK: parity holds**" in (sweep_dir / "sweep_report.md").read_text()
    assert (sweep_dir / "sweep_report.png").stat().st_size > 1000
    assert "parity OK in 1 behaviour group(s)" in proc.stderr


def test_sweep_when_provider_peeks_ahead_then_exit_3_naming_jobs_and_keys(
    market_db: Path, tmp_path: Path
) -> None:
    """A lookahead bug only chunk boundaries expose: the sweep must fail and say where."""
    # Arrange
    sweep_dir = tmp_path / "sweep"
    # Act
    proc = _sweep(
        market_db,
        sweep_dir,
        "market=lookahead",
        "market.chunk_size=40,400",
        f"hydra.searchpath=[file://{LOOKAHEAD_CONF}]",
        env=LOOKAHEAD_ENV,
    )
    # Assert
    assert proc.returncode == PARITY_EXIT_CODE, proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert error_lines == [
        "error: sweep parity violated: jobs 0, 1 differ only in performance key(s) market.chunk_size but produced "
        f"2 different digests; see {sweep_dir / 'sweep_report.md'}"
    ]
    assert "Traceback" not in proc.stderr
    report = (sweep_dir / "sweep_report.md").read_text()
    assert "**FAILED: parity violated**" in report
    assert "performance keys that differ: market.chunk_size (changes the digest)" in report
    assert {r["parity"] for r in _report_rows(sweep_dir)} == {"MISMATCH"}


def test_sweep_when_a_job_fails_then_report_lists_it_and_exit_is_non_zero(
    market_db: Path, tmp_path: Path
) -> None:
    # Arrange
    sweep_dir = tmp_path / "sweep"
    # Act: strategy.fast=50 is above strategy.slow=30, a configuration error in job 1 only
    proc = _sweep(market_db, sweep_dir, "strategy.fast=5,50")
    # Assert
    assert proc.returncode == 2, proc.stderr
    assert "strategy.fast must be >= 1 and below strategy.slow" in proc.stderr
    rows = _report_rows(sweep_dir)
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "failed")]
    report = (sweep_dir / "sweep_report.md").read_text()
    assert "A job failed, so the multirun ended with an error after its jobs ran" in report
    assert "- job 1 (failed): ConfigError: strategy.fast must be" in report


def test_sweep_when_an_early_job_fails_then_later_jobs_still_run(
    market_db: Path, tmp_path: Path
) -> None:
    # Arrange
    sweep_dir = tmp_path / "sweep"
    # Act: job 0 is misconfigured, jobs 1 and 2 are fine
    proc = _sweep(market_db, sweep_dir, "strategy.fast=50,5,7")
    # Assert: every job ran, the report lists the failure, the CLI exits with the failure's code
    assert proc.returncode == 2, proc.stderr
    rows = _report_rows(sweep_dir)
    assert [(r["job"], r["status"]) for r in rows] == [
        ("0", "failed"),
        ("1", "completed"),
        ("2", "completed"),
    ]


@pytest.mark.slow
def test_sweep_when_behaviour_keys_vary_then_each_group_needs_one_digest_only(
    market_db: Path, tmp_path: Path
) -> None:
    # Arrange
    sweep_dir = tmp_path / "sweep"
    # Act
    proc = _sweep(market_db, sweep_dir, "strategy.fast=5,10", "buffer=duckdb,memory")
    # Assert
    assert proc.returncode == 0, proc.stderr
    rows = _report_rows(sweep_dir)
    groups = {r["group"]: {x["digest"] for x in rows if x["group"] == r["group"]} for r in rows}
    assert len(groups) == 2 and all(len(d) == 1 for d in groups.values())
    assert (
        len({r["digest"] for r in rows}) == 2
    )  # strategy.fast is behaviour: it may change the digest


@pytest.mark.slow
def test_sweep_preset_when_performance_preset_runs_then_16_jobs_share_one_digest(
    market_db: Path, tmp_path: Path
) -> None:
    """`+sweep=performance` sweeps market kind x chunk size, analytics kind and batch size in one command."""
    # Arrange
    sweep_dir = tmp_path / "sweep"
    # Act: no -m (the preset sets hydra.mode=MULTIRUN); a short window keeps market=direct quick
    proc = run_cli(
        "runner",
        [
            "+experiment=backtest",
            "+sweep=performance",
            f"db.path={market_db}",
            "run.plot=false",
            "end=2024-03-08T01:30",
            f"hydra.sweep.dir={sweep_dir}",
        ],
    )
    # Assert
    assert proc.returncode == 0, proc.stderr
    rows = _report_rows(sweep_dir)
    assert len(rows) == 16 and len({r["digest"] for r in rows}) == 1
    combos = {
        tuple(
            o
            for o in r["overrides"].split()
            if o.split("=")[0] in ("+sweep/market", "analytics", "buffer.batch_size")
        )
        for r in rows
    }
    assert len(combos) == 16
    direct = [r for r in rows if "+sweep/market=direct" in r["overrides"]]
    assert len(direct) == 4 and all(
        int(r["market_db_queries"]) == 91 for r in direct
    )  # one query per step


def _popen_sweep(db: Path, cwd: Path, *args: str) -> tuple[int, int, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "-m",
            "+experiment=backtest",
            f"db.path={db}",
            "run.plot=false",
            *args,
        ],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_env(), "PYTHONPATH": str(REPO)},
    )
    _out, err = proc.communicate(timeout=300)
    return proc.returncode, proc.pid, err


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def _assert_one_sweep_dir(cwd: Path, parent_pid: int, n_jobs: int) -> Path:
    """The default sweep dir pattern resolved once, in the launching process: one dir, uid = its pid."""
    sweep_dirs = [p.parent for p in cwd.glob("multirun/backtest/*/*/multirun.yaml")]
    assert len(sweep_dirs) == 1, sweep_dirs
    sweep_dir = sweep_dirs[0]
    assert re.fullmatch(rf"\d\d-\d\d-\d\d-{parent_pid}[0-9a-f]{{4}}", sweep_dir.name), (
        sweep_dir.name
    )
    assert sorted(
        p.name for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
    ) == [str(n) for n in range(n_jobs)]
    return sweep_dir


def test_sweep_when_launcher_is_joblib_then_jobs_run_in_worker_processes_under_one_sweep_dir(
    market_db: Path, tmp_path: Path
) -> None:
    # Act
    code, parent_pid, err = _popen_sweep(
        market_db,
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "market.chunk_size=50,500",
    )
    # Assert
    assert code == 0, err
    sweep_dir = _assert_one_sweep_dir(tmp_path, parent_pid, 2)
    job_pids = {
        json.loads((sweep_dir / str(n) / "sweep_job.json").read_text())["pid"] for n in range(2)
    }
    assert parent_pid not in job_pids
    rows = _report_rows(sweep_dir)
    assert len({r["digest"] for r in rows}) == 1 and {r["status"] for r in rows} == {"completed"}
    assert "ran in parallel" in (sweep_dir / "sweep_report.md").read_text()
    assert rows[0]["launcher"] == "JoblibLauncher (n_jobs=2, parallel)"


@pytest.mark.slow
def test_sweep_when_launcher_is_submitit_local_then_jobs_run_in_their_own_processes(
    market_db: Path, tmp_path: Path
) -> None:
    # Act
    code, parent_pid, err = _popen_sweep(
        market_db,
        tmp_path,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        "market.chunk_size=50,500",
    )
    # Assert
    assert code == 0, err
    sweep_dir = _assert_one_sweep_dir(tmp_path, parent_pid, 2)
    job_pids = {
        json.loads((sweep_dir / str(n) / "sweep_job.json").read_text())["pid"] for n in range(2)
    }
    assert len(job_pids) == 2 and parent_pid not in job_pids
    assert len({r["digest"] for r in _report_rows(sweep_dir)}) == 1


def _row(
    num: int,
    digest: str | None,
    chunk: int,
    analytics: str = "cached",
    fast: int = 10,
    status: str = "completed",
) -> JobRow:
    return JobRow(
        num=num,
        run_dir=Path(str(num)),
        overrides=[f"market.chunk_size={chunk}", f"analytics={analytics}", f"strategy.fast={fast}"],
        status=status,
        digest=digest,
        behaviour={"strategy.fast": fast},
        performance={"market.chunk_size": chunk, "analytics.kind": analytics},
    )


def test_check_parity_when_digest_follows_one_key_then_only_that_key_is_suspect() -> None:
    # Arrange: the digest changes with chunk_size; analytics varies inside both digest classes
    rows = [
        _row(0, "a", 40, "direct"),
        _row(1, "a", 40, "cached"),
        _row(2, "b", 400, "direct"),
        _row(3, "b", 400, "cached"),
        _row(4, "z", 40, fast=5),
    ]
    # Act
    violations = check_parity(rows)
    # Assert
    assert len(violations) == 1
    v = violations[0]
    assert v.jobs_by_digest == {"a": [0, 1], "b": [2, 3]}
    assert v.keys == ["analytics.kind", "market.chunk_size"] and v.suspects == ["market.chunk_size"]
    assert [r.parity for r in rows] == ["MISMATCH"] * 4 + ["ok"]
    assert rows[4].group != rows[0].group


def test_check_parity_when_a_job_failed_or_was_interrupted_then_it_is_not_compared() -> None:
    rows = [
        _row(0, "a", 40),
        _row(1, None, 400, status="failed"),
        _row(2, "partial", 1000, status="interrupted"),
    ]
    assert check_parity(rows) == []
    assert [r.parity for r in rows] == ["ok", "n/a", "n/a"]


def test_duplicate_configs_when_overrides_differ_but_configs_match_then_jobs_are_named() -> None:
    """An experiment that pins a performance group beats a preset's choice; the report says so."""
    rows = [_row(0, "a", 1000), _row(1, "a", 1000), _row(2, "a", 100)]
    rows[1].overrides = ["+sweep/market=direct", "analytics=cached", "strategy.fast=10"]
    assert duplicate_configs(rows) == [[0, 1]]


def test_describe_launcher_when_basic_or_joblib_then_parallel_is_flagged() -> None:
    from omegaconf import OmegaConf

    basic = OmegaConf.create(
        {
            "hydra": {
                "launcher": {
                    "_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
                }
            }
        }
    )
    joblib = OmegaConf.create(
        {
            "hydra": {
                "launcher": {
                    "_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                    "n_jobs": 2,
                }
            }
        }
    )
    assert describe_launcher(basic) == ("basic (sequential, one process)", False)
    assert describe_launcher(joblib) == ("JoblibLauncher (n_jobs=2, parallel)", True)


def test_slurm_example_when_selected_then_it_composes_to_a_submitit_slurm_launcher() -> None:
    """The documented SLURM launcher (conf/hydra/launcher/slurm_example.yaml) composes; no cluster needed."""
    from hydra import compose, initialize_config_dir

    from tests.helpers import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "+experiment=backtest",
                "hydra/launcher=slurm_example",
                "hydra.launcher.partition=cpu",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert (
        launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert launcher.partition == "cpu" and launcher.timeout_min == 60
    assert launcher.submitit_folder.startswith(
        f"{cfg.hydra.sweep.dir}/.submitit/"
    )  # job logs beside the jobs


def test_read_job_when_halted_from_outside_then_it_is_not_compared(tmp_path: Path) -> None:
    """A HALT file or SIGUSR1 in one job changes its digest legitimately; that is not a parity break."""
    # Arrange
    from runner.sweep import read_job

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- market.chunk_size=100\n")
    (tmp_path / ".hydra" / "config.yaml").write_text(
        "market:\n  kind: chunked\n  chunk_size: 100\n"
    )
    (tmp_path / "summary.json").write_text(
        json.dumps(
            {
                "status": "halted",
                "digest": "d",
                "metrics": {},
                "kill_switch": {"state": "halted", "code": "MANUAL"},
            }
        )
    )
    # Act
    row = read_job(tmp_path)
    other = _row(1, "other digest", 1000)
    other.behaviour = row.behaviour  # same behaviour group, different digest
    # Assert
    assert row.status == "halted (manual)"
    assert check_parity([row, other]) == [] and row.parity == "n/a" and row.group == other.group


def test_sweep_report_when_pickled_for_a_worker_then_without_the_pending_report(
    tmp_path: Path,
) -> None:
    """Issue 13: joblib pickles the callbacks per job; the master config stays in the sweep."""
    import pickle

    from omegaconf import OmegaConf

    from runner.sweep import SweepReport

    # Arrange
    report = SweepReport(rank_by="sharpe")
    report._pending = (tmp_path, OmegaConf.create({"big": list(range(1000))}))
    # Act
    copy = pickle.loads(pickle.dumps(report))
    # Assert
    assert copy._pending is None and report._pending is not None
    assert {k: v for k, v in vars(copy).items() if k != "_pending"} == {
        k: v for k, v in vars(report).items() if k != "_pending"
    }


@pytest.mark.parametrize(
    ("overrides", "keys", "names"),
    [
        (  # a grid: values under the bars, the keys once as the axis title
            [
                ["db.path=x", "strategy.fast=5", "strategy.slow=20"],
                ["db.path=x", "strategy.fast=7", "strategy.slow=60"],
            ],
            ["strategy.fast", "strategy.slow"],
            ["5, 20", "7, 60"],
        ),
        (  # jobs that vary different keys keep their whole overrides, one per line
            [["strategy.fast=5"], ["market.chunk_size=100"]],
            [],
            ["strategy.fast=5", "market.chunk_size=100"],
        ),
    ],
)
def test_job_labels_when_jobs_vary_keys_then_grid_labels_are_values(
    overrides: list[list[str]], keys: list[str], names: list[str]
) -> None:
    from runner.sweep import _job_labels, varying_overrides

    # Arrange
    rows = [
        JobRow(num=k, run_dir=Path("."), overrides=o, status="completed")
        for k, o in enumerate(overrides)
    ]
    # Act
    got = _job_labels(rows, varying_overrides(rows))
    # Assert
    assert got == (keys, names)


def test_mode_probe_when_not_a_multirun_then_hydra_keeps_its_probe() -> None:
    """A single run keeps Hydra's hydra.mode probe (a config may make it a sweep)."""
    # Arrange
    from hydra._internal.hydra import Hydra

    from runner.fast_compose import skip_mode_probe_for_multirun

    probe = Hydra.get_mode
    # Act
    installed = skip_mode_probe_for_multirun(["+experiment=backtest", "strategy.fast=5"])
    # Assert
    assert installed is False and Hydra.get_mode is probe


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "hydra.callbacks.sweep_report.speed_plot=maybe",
            "hydra.callbacks.sweep_report.speed_plot must be true, false or null, was 'maybe'",
        ),
        (
            "hydra.callbacks.sweep_report.plot=7",
            "hydra.callbacks.sweep_report.plot must be true or false, was 7",
        ),
        ("run.extras=maybe", "run.extras=maybe: expected true or false, got 'maybe'"),
    ],
)
def test_sweep_when_a_report_switch_is_not_a_bool_then_one_line_and_exit_2(
    market_db: Path, tmp_path: Path, override: str, expected: str
) -> None:
    # Act
    proc = _sweep(market_db, tmp_path / "sweep", "strategy.fast=3,5", override)
    # Assert
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "sweep").exists()  # nothing written
