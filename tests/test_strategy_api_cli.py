"""Plugins that just work and errors that teach (issue 11, item 5), through the real CLI.

Each case runs ``python -m runner`` in a subprocess and expects exactly one line on stderr that
names the module, path, strategy or bar and the fix, exit code 2 and no traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO, make_market_db, read_shared_csv, run_cli

PLUGIN_CONF = "hydra.searchpath=[file://tests/plugins/conf]"


@pytest.fixture(scope="module")
def goog_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(
        tmp_path_factory.mktemp("goog") / "goog.duckdb",
        read_shared_csv("goog_daily_2004_2013.csv").head(300),
    )


def one_error_line(proc) -> str:
    """Assert exit 2, no traceback and one error line (besides the run's INFO log lines); return it."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert all(" | INFO    | " in line for line in lines if line not in errors), proc.stderr
    return errors[0]


def runner(plugins: str, *args: str, cwd: Path = REPO):
    return run_cli(
        "runner", ["+experiment=backtest", *args], cwd=cwd, env={"RUNNER_PLUGINS": plugins}
    )


def test_plugins_when_module_missing_then_one_line_with_suggestion(tmp_path: Path) -> None:
    proc = runner("examples.strategies.donchain", f"hydra.run.dir={tmp_path / 'run'}")
    assert re.match(
        r"^error: RUNNER_PLUGINS: no module named 'examples\.strategies\.donchain' \(searched the "
        r"working directory .+ and PYTHONPATH\)\. Did you mean 'examples\.strategies\.donchian'\? "
        r"Fix: give the dotted module name .*PYTHONPATH\.$",
        one_error_line(proc),
    )
    assert not (tmp_path / "run").exists()


def test_plugins_when_module_import_raises_then_one_line_names_file_and_line() -> None:
    proc = runner("tests.plugins.broken_import")
    assert re.match(
        r"^error: RUNNER_PLUGINS: importing 'tests\.plugins\.broken_import' failed with "
        r"ZeroDivisionError: division by zero at .+/tests/plugins/broken_import\.py:5; fix the "
        r"module, or drop it from RUNNER_PLUGINS\.$",
        one_error_line(proc),
    )


def test_plugins_when_module_registers_nothing_then_one_line_says_how_to_register() -> None:
    proc = runner("tests.plugins.registers_nothing")
    assert one_error_line(proc) == (
        "error: RUNNER_PLUGINS: module 'tests.plugins.registers_nothing' was imported but registered "
        "no component; fix: decorate a Strategy subclass with @register_strategy(...) "
        "(components.strategies.api) or a factory with @register(...) in it, or drop it from "
        "RUNNER_PLUGINS."
    )


def test_searchpath_when_relative_dir_missing_then_one_line_names_the_resolved_path() -> None:
    proc = runner(
        "examples.strategies.donchian",
        "strategy=donchian",
        "hydra.searchpath=[file://examples/cnf]",
    )
    assert one_error_line(proc) == (
        "error: hydra.searchpath: file://examples/cnf is not a directory (resolved against the "
        f"working directory to {REPO / 'examples' / 'cnf'}); fix: give an existing config directory, "
        "e.g. hydra.searchpath=[file://examples/conf] from the repository root, or an absolute path."
    )


def test_searchpath_when_relative_then_resolved_against_the_working_directory(
    goog_db: Path, tmp_path: Path
) -> None:
    """Run from another directory: the relative path is taken from there, the module from PYTHONPATH."""
    conf = tmp_path / "my_conf" / "strategy"
    conf.mkdir(parents=True)
    conf.joinpath("donchian.yaml").write_text(
        (REPO / "examples" / "conf" / "strategy" / "donchian.yaml").read_text()
    )
    proc = run_cli(
        "runner",
        [
            "+experiment=backtest",
            f"db.path={goog_db}",
            "strategy=donchian",
            "hydra.searchpath=[file://my_conf]",
            f"hydra.run.dir={tmp_path / 'run'}",
            "run.plot=false",
        ],
        cwd=tmp_path,
        env={"RUNNER_PLUGINS": "examples.strategies.donchian", "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "UserWarning" not in proc.stderr
    saved = (tmp_path / "run" / ".hydra" / "hydra.yaml").read_text()
    assert f"file://{tmp_path / 'my_conf'}" in saved


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (
            "raise",
            r"^error: strategy 'faulty': decide\(\) raised KeyError: 'missing_key' at GOOG bar 5 "
            r"\(2004-08-26T00:00:00\+00:00\); fix: correct Faulty\.decide \(the traceback is in runner\.log\)\.$",
        ),
        (
            "length",
            r"^error: strategy 'faulty': indicator 'zero' returned 299 values for 300 bars at GOOG "
            r"bar 299 \(.+\); fix: return one value per input bar, NaN where it is not defined yet .*\.$",
        ),
        (
            "unknown_symbol",
            r"^error: strategy 'faulty': order or lookup for unknown symbol 'GOOGL' \(run symbols: "
            r"GOOG\)\. Did you mean 'GOOG'\? at GOOG bar 5 \(2004-08-26T00:00:00\+00:00\); fix: use one of "
            r"the run's symbols, or add it with symbols=\[\.\.\.\]\.$",
        ),
        (
            "limit",
            r"^error: strategy 'faulty': buy\(\): a limit order needs a limit price at GOOG bar 5 "
            r"\(2004-08-26T00:00:00\+00:00\); fix: pass limit=<price>, e\.g\. buy\(limit=ctx\.now\.close\)\.$",
        ),
    ],
)
def test_strategy_when_misused_then_one_line_names_strategy_bar_and_fix_exit_2(
    fault: str, expected: str, goog_db: Path, tmp_path: Path
) -> None:
    proc = runner(
        "tests.plugins.faulty_strategy",
        f"db.path={goog_db}",
        "strategy=faulty",
        f"strategy.fault={fault}",
        PLUGIN_CONF,
        f"hydra.run.dir={tmp_path / 'run'}",
        "run.plot=false",
    )
    assert re.match(expected, one_error_line(proc)), proc.stderr
    if fault == "raise":
        log = (tmp_path / "run" / "runner.log").read_text()
        assert "Traceback" in log and "KeyError: 'missing_key'" in log
