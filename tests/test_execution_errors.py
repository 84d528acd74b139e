"""Bad execution settings (issue 10, issue 14): one line, exit 2, no traceback, in a subprocess.

Every case runs the real CLI (``python -m runner ...``); all are started at once by one module
fixture, so the file costs about as much as its slowest case.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, make_market_db, read_shared_csv
from tests.plugins.limit_strategy import CONF_DIR as PLUGIN_CONF

CASES: dict[str, tuple[tuple[str, ...], str]] = {
    "negative_rate": (
        ("broker.commission.rate=-0.1",),
        r"broker\.commission\.rate must be a finite number >= 0, was -0\.1; "
        r"e\.g\. broker\.commission\.rate=0\.001",
    ),
    "rate_not_a_fraction": (
        ("broker.commission.rate=1.5",),
        r"broker\.commission\.rate must be a fraction below 1 of the notional, was 1\.5; "
        r"write 0\.001 for 10 bp",
    ),
    "spread_at_one": (
        ("broker.spread=1.0",),
        r"broker\.spread must be a fraction below 1, was 1\.0; write 0\.0005 for 5 bp",
    ),
    "min_above_max": (
        (
            "broker.commission.per_unit=0.01",
            "broker.commission.min=5",
            "broker.commission.max=1",
        ),
        r"broker\.commission\.min \(5\.0\) must not exceed broker\.commission\.max \(1\.0\); "
        r"e\.g\. broker\.commission\.min=1\.0 broker\.commission\.max=50\.0",
    ),
    "min_without_per_unit": (
        ("broker.commission.min=1",),
        r"broker\.commission\.min clamps the per-unit charge, but broker\.commission\.per_unit is "
        r"0; set e\.g\. broker\.commission\.per_unit=0\.005 or remove broker\.commission\.min",
    ),
    "stop_loss_zero": (
        ("orders.stop_loss=0",),
        r"orders\.stop_loss must be a fraction > 0 of the decision close or null \(none\), was "
        r"0\.0; e\.g\. orders\.stop_loss=0\.02 for 2 %",
    ),
    "take_profit_negative": (
        ("orders.take_profit=-0.04",),
        r"orders\.take_profit must be a fraction > 0 of the decision close or null \(none\), was "
        r"-0\.04; e\.g\. orders\.take_profit=0\.02 for 2 %",
    ),
    "volume_fraction_zero": (
        ("broker.max_volume_fraction=0",),
        r"broker\.max_volume_fraction must be a fraction in \(0, 1\] or null \(off\), was 0\.0; "
        r"e\.g\. broker\.max_volume_fraction=0\.1",
    ),
    "negative_borrow": (
        ("broker.borrow_rate=-0.01",),
        r"broker\.borrow_rate must be a finite number >= 0, was -0\.01; e\.g\. broker\.borrow_rate=0\.03",
    ),
    "old_order_size": (
        ("broker.order_size=50",),
        r"broker\.order_size=50 was replaced by the sizing group: write sizing\.units=50 "
        r"\(sizing=fixed_units\) instead",
    ),
    "cash_nan": (
        ("broker.cash=nan",),
        r"broker\.cash must be a finite amount > 0, was nan; try broker\.cash=1000000",
    ),
    "cash_inf": (
        ("broker.cash=inf",),
        r"broker\.cash must be a finite amount > 0, was inf; try broker\.cash=1000000",
    ),
    "units_beyond_int64": (
        ("sizing.units=9223372036854775808",),
        r"sizing\.units must be a whole number of units in \[1, 1,000,000,000,000\], was "
        r"9223372036854775808; e\.g\. sizing\.units=100",
    ),
    "fraction_above_one": (
        ("sizing=percent_equity", "sizing.fraction=1.5"),
        r"sizing\.fraction must be a fraction of equity in \(0, 1\], was 1\.5; write 0\.1 for 10 %",
    ),
    "limit_without_price": (
        (f"hydra.searchpath=[file://{PLUGIN_CONF}]", "strategy=limit_probe"),
        r"strategy limit_probe: insight for GOOG at 2004-08-25T00:00:00\+00:00 asks for a limit "
        r"order with limit=None; give Insight\.limit a price > 0 \(or use order_type='market'\)",
    ),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("exec_errors")
    db = make_market_db(tmp / "goog.duckdb", read_shared_csv("goog_daily_2004_2013.csv"))
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["RUNNER_PLUGINS"] = "tests.plugins.limit_strategy"
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                "+experiment=backtest",
                f"db.path={db}",
                "run.progress=off",
                "run.log_level=WARNING",
                f"hydra.run.dir={tmp / name}",
                *args,
            ],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name, (args, _) in CASES.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.mark.parametrize("name", sorted(CASES))
def test_runner_when_execution_setting_bad_then_one_line_exit_2_no_traceback(
    name: str, outcomes: dict[str, subprocess.CompletedProcess]
) -> None:
    result = outcomes[name]
    assert result.returncode == 2, f"{name}: exit {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    lines = result.stderr.rstrip("\n").splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch("error: " + CASES[name][1], lines[0]), lines[0]


def test_runner_when_limit_order_refused_mid_run_then_no_results_row_after_the_refusal(
    outcomes: dict[str, subprocess.CompletedProcess], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The refusal stops the run before the order reaches the broker: no fill exists."""
    assert outcomes["limit_without_price"].returncode == 2
    run_dir = Path(outcomes["limit_without_price"].args[-3].split("=", 1)[1])
    assert (run_dir / "results.duckdb").exists()
    import duckdb

    con = duckdb.connect(str(run_dir / "results.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM fills").fetchone() == (0,)
        assert con.execute("SELECT status FROM runs").fetchone() == ("failed",)
    finally:
        con.close()
