"""The command-line contract external acceptance checks use (issue 4): keep it exactly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

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


@pytest.fixture(scope="module")
def goog_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("cli") / "market.duckdb"
    result = run_cli(
        "producers.ingest", [f"source={SHARED_DATA / 'goog_daily_2004_2013.csv'}", f"db.path={db}"]
    )
    assert result.returncode == 0, result.stderr
    return db


@pytest.mark.parametrize("strategy", ["sma_cross", "rsi_revert"])
def test_cli_when_contract_commands_run_then_trades_and_summary_match_reference(
    strategy: str, goog_db: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = run_cli(
        "runner",
        [
            "+experiment=backtest",
            f"db.path={goog_db}",
            f"strategy={strategy}",
            "symbols=[GOOG]",
            f"hydra.run.dir={run_dir}",
        ],
    )
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
