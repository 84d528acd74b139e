"""The command-line contract external acceptance checks use (issue 4): keep it exactly."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.helpers import REPO, SHARED_DATA, run_cli

REFERENCE = REPO.parent / "shared" / "reference"
TRADE_COLUMNS = [
    "symbol",
    "entry_ts",
    "entry_price",
    "exit_ts",
    "exit_price",
    "size",
    "fees",
    "pnl",
    "exit_reason",
]
SUMMARY_KEYS = {
    "n_trades",
    "total_pnl",
    "total_fees",
    "final_equity",
    "open_positions",
    "digest",
    "status",
}


def naive(ts: str) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def read_trades(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def goog_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("cli") / "market.duckdb"
    result = run_cli(
        "producers.ingest", [f"source={SHARED_DATA / 'goog_daily_2004_2013.csv'}", f"db.path={db}"]
    )
    assert result.returncode == 0, result.stderr
    return db


def run_contract(db: Path, run_dir: Path, strategy: str, *overrides: str) -> Any:
    """Run one contract command: ``python -m runner +experiment=backtest db.path=<db>
    strategy=<s> [strategy.*] symbols=[GOOG] [overrides] hydra.run.dir=<dir>``."""
    own = [o for o in overrides if o.startswith("strategy.")]
    rest = [o for o in overrides if not o.startswith("strategy.")]
    return run_cli(
        "runner",
        [
            "+experiment=backtest",
            f"db.path={db}",
            f"strategy={strategy}",
            *own,
            "symbols=[GOOG]",
            *rest,
            f"hydra.run.dir={run_dir}",
        ],
    )


@pytest.mark.parametrize("strategy", ["sma_cross", "rsi_revert"])
def test_cli_when_contract_commands_run_then_trades_and_summary_match_reference(
    strategy: str, goog_db: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = run_contract(goog_db, run_dir, strategy)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    with open(run_dir / "trades.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == TRADE_COLUMNS
        trades = list(reader)
    with open(REFERENCE / f"goog_daily__{strategy}.trades.csv", newline="") as handle:
        golden = list(csv.DictReader(handle))
    assert [
        (
            t["entry_ts"][:19],
            float(t["entry_price"]),
            t["exit_ts"][:19],
            float(t["exit_price"]),
            int(t["size"]),
        )
        for t in trades
    ] == [
        (
            g["entry_ts"],
            float(g["entry_price"]),
            g["exit_ts"],
            float(g["exit_price"]),
            int(g["size"]),
        )
        for g in golden
    ]
    assert all(t["entry_ts"].endswith("+00:00") for t in trades)  # ISO-8601 with offset
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary.keys() >= SUMMARY_KEYS
    reference = json.loads((REFERENCE / f"goog_daily__{strategy}.summary.json").read_text())
    assert summary["n_trades"] == reference["n_trades"]
    assert summary["total_pnl"] == pytest.approx(reference["total_pnl"], abs=1e-6)
    assert summary["final_equity"] == pytest.approx(reference["final_equity"], abs=1e-6)
    assert summary["status"] == "completed"
    for name in ("metrics.json", "runner.log", "results.duckdb", "summary.md", "equity.png"):
        assert (run_dir / name).exists(), name


def test_cli_when_symbols_null_then_every_symbol_in_db_is_traded(tmp_path: Path) -> None:
    db = tmp_path / "wiki.duckdb"
    assert (
        run_cli(
            "producers.ingest",
            [f"source={SHARED_DATA / 'wiki_stocks_daily_2000_2013.csv'}", f"db.path={db}"],
        ).returncode
        == 0
    )
    run_dir = tmp_path / "run"
    result = run_cli(
        "runner",
        ["+experiment=backtest", f"db.path={db}", "symbols=null", f"hydra.run.dir={run_dir}"],
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["symbols"] == ["AAPL", "FB", "GOOG", "IBM", "MSFT"]
    with open(run_dir / "trades.csv", newline="") as handle:
        traded = {row["symbol"] for row in csv.DictReader(handle)}
    assert {"AAPL", "GOOG", "IBM", "MSFT"} <= traded


# -- execution variants (DESIGN 5b), through the command-line contract of issue 10 ----------------
COSTS = (
    "broker.cash=10000000",
    "broker.commission.fixed=1.0",
    "broker.commission.rate=0.001",
    "broker.spread=0.0005",
)
VARIANTS = {
    "costs": ("sma_cross", *COSTS),
    "long_short": ("sma_cross", "strategy.short=true", *COSTS),
    "brackets": (
        "rsi_revert",
        "broker.cash=10000000",
        "orders.stop_loss=0.02",
        "orders.take_profit=0.04",
    ),
}


def assert_execution_trades_match(
    got: list[dict[str, str]], expected: list[dict[str, str]]
) -> None:
    """ts, signed size, exit reason and count exact; prices 1e-9 relative; fees and pnl 1e-8."""
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        where = f"trade {i}: {g} vs {e}"
        assert g["symbol"] == "GOOG", where
        assert naive(g["entry_ts"]) == naive(e["entry_ts"]), where
        assert naive(g["exit_ts"]) == naive(e["exit_ts"]), where
        assert int(g["size"]) == int(e["size"]) and g["exit_reason"] == e["exit_reason"], where
        assert float(g["entry_price"]) == pytest.approx(float(e["entry_price"]), rel=1e-9), where
        assert float(g["exit_price"]) == pytest.approx(float(e["exit_price"]), rel=1e-9), where
        assert float(g["fees"]) == pytest.approx(float(e["fees"]), abs=1e-8), where
        assert float(g["pnl"]) == pytest.approx(float(e["pnl"]), abs=1e-8), where


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cli_when_execution_contract_command_runs_then_matches_backtesting_py_golden_list(
    variant: str, goog_db: Path, tmp_path: Path
) -> None:
    """Issue 10's three commands reproduce goog_daily__costs / __long_short / __brackets."""
    # Arrange
    run_dir = tmp_path / "run"
    # Act
    result = run_contract(goog_db, run_dir, *VARIANTS[variant])
    # Assert
    assert result.returncode == 0, result.stderr
    with open(run_dir / "trades.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == TRADE_COLUMNS
        got = list(reader)
    assert_execution_trades_match(got, read_trades(REFERENCE / f"goog_daily__{variant}.trades.csv"))
    summary = json.loads((run_dir / "summary.json").read_text())
    golden = json.loads((REFERENCE / f"goog_daily__{variant}.summary.json").read_text())
    assert summary["status"] == "completed" and summary["n_trades"] == golden["n_trades"]
    for key in ("total_pnl", "total_fees", "final_equity"):
        assert summary[key] == pytest.approx(golden[key], abs=1e-6), key
    assert {"digest", "open_positions"} <= summary.keys()
    reasons = {r: sum(1 for t in got if t["exit_reason"] == r) for r in golden["exit_reasons"]}
    assert reasons == golden["exit_reasons"]
    expected_open = golden["open_position"]
    if expected_open is None:
        assert summary["open_positions"] == []
    else:
        (pos,) = summary["open_positions"]
        assert naive(pos["entry_ts"]) == naive(expected_open["entry_ts"])
        assert pos["size"] == expected_open["size"]
        assert pos["entry_price"] == pytest.approx(expected_open["entry_price"], rel=1e-9)
        assert pos["entry_fee"] == pytest.approx(expected_open["entry_fee"], abs=1e-8)
        assert pos["unrealized_pnl"] == pytest.approx(expected_open["unrealized_pnl"], abs=1e-6)
