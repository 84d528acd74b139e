"""GOOG golden trade lists (../shared/reference), on which two established backtesters agree."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import (
    REPO,
    make_market_db,
    read_shared_csv,
    run_in_process,
)

REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="module")
def goog_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(
        tmp_path_factory.mktemp("goog") / "goog.duckdb", read_shared_csv("goog_daily_2004_2013.csv")
    )


def read_trades(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def naive(ts: str) -> pd.Timestamp:
    stamp = pd.Timestamp(ts)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def assert_trades_match(got: list[dict[str, str]], expected: list[dict[str, str]]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g["symbol"] == "GOOG"
        assert naive(g["entry_ts"]) == naive(e["entry_ts"]) and naive(g["exit_ts"]) == naive(
            e["exit_ts"]
        )
        assert float(g["entry_price"]) == float(e["entry_price"])
        assert float(g["exit_price"]) == float(e["exit_price"])
        assert int(g["size"]) == int(e["size"])
        assert float(g["pnl"]) == pytest.approx(float(e["pnl"]), abs=1e-6)


@pytest.mark.parametrize("strategy", ["sma_cross", "rsi_revert"])
def test_goog_when_reference_strategy_then_trades_match_golden_list(
    strategy: str, goog_db: Path, tmp_path: Path
) -> None:
    code, summary = run_in_process(
        tmp_path / "run", [f"db.path={goog_db}", f"strategy={strategy}", "symbols=[GOOG]"]
    )
    golden = json.loads((REFERENCE / f"goog_daily__{strategy}.summary.json").read_text())
    assert code == 0 and summary["status"] == "completed"
    assert_trades_match(
        read_trades(tmp_path / "run" / "trades.csv"),
        read_trades(REFERENCE / f"goog_daily__{strategy}.trades.csv"),
    )
    assert summary["n_trades"] == golden["n_trades"]
    assert summary["total_pnl"] == pytest.approx(golden["total_pnl"], abs=1e-6)
    assert summary["final_equity"] == pytest.approx(golden["final_equity"], abs=1e-6)
    if golden["open_position"] is None:
        assert summary["open_positions"] == []
    else:
        (pos,) = summary["open_positions"]
        assert naive(pos["entry_ts"]) == naive(golden["open_position"]["entry_ts"])
        assert pos["entry_price"] == golden["open_position"]["entry_price"]
        assert pos["mark_price"] == golden["open_position"]["mark_price"]
        assert pos["unrealized_pnl"] == pytest.approx(
            golden["open_position"]["unrealized_pnl"], abs=1e-6
        )


def test_sma_cross_when_goog_then_design_figures_hold(goog_db: Path, tmp_path: Path) -> None:
    """DESIGN section 5: 32 trades, pnl 66275.0, first 2004-12-21 @ 186.31 -> 2005-01-31 @ 193.69, 2012-12-04 open."""
    _, summary = run_in_process(tmp_path / "run", [f"db.path={goog_db}", "symbols=[GOOG]"])
    first = read_trades(tmp_path / "run" / "trades.csv")[0]
    assert (summary["n_trades"], round(summary["total_pnl"], 6)) == (32, 66275.0)
    assert (first["entry_ts"], first["entry_price"], first["exit_ts"], first["exit_price"]) == (
        "2004-12-21T00:00:00+00:00",
        "186.31",
        "2005-01-31T00:00:00+00:00",
        "193.69",
    )
    assert summary["open_positions"][0]["entry_ts"] == "2012-12-04T00:00:00+00:00"
    assert summary["open_positions"][0]["entry_price"] == 695.0


def _wilder_rsi(closes: list[float], period: int = 14) -> list[float | None]:
    """RSI straight from the rule text in DESIGN section 5, one bar at a time."""
    rsi: list[float | None] = [None] * len(closes)
    ups = [max(closes[t] - closes[t - 1], 0.0) for t in range(1, len(closes))]
    dns = [max(closes[t - 1] - closes[t], 0.0) for t in range(1, len(closes))]
    au, ad = sum(ups[:period]) / period, sum(dns[:period]) / period
    for t in range(period + 1, len(closes)):
        au = au * (period - 1) / period + ups[t - 1] / period
        ad = ad * (period - 1) / period + dns[t - 1] / period
        rsi[t] = (50.0 if au == 0 else 100.0) if ad == 0 else 100 - 100 / (1 + au / ad)
    return rsi


def test_rsi_revert_when_trades_checked_by_hand_then_each_follows_the_rule_text(
    goog_db: Path, tmp_path: Path
) -> None:
    """Each entry was decided on the bar before it with RSI < 30 while flat; each exit with RSI > 70 while long."""
    run_in_process(
        tmp_path / "run", [f"db.path={goog_db}", "strategy=rsi_revert", "symbols=[GOOG]"]
    )
    bars = read_shared_csv("goog_daily_2004_2013.csv")
    rsi = _wilder_rsi(bars["close"].tolist())
    index = {ts.isoformat(): i for i, ts in enumerate(bars["ts"])}
    trades = read_trades(tmp_path / "run" / "trades.csv")
    for trade in trades[:4]:
        entry, exit_ = index[trade["entry_ts"]], index[trade["exit_ts"]]
        assert rsi[entry - 1] is not None and rsi[entry - 1] < 30, trade
        assert float(trade["entry_price"]) == bars["open"][entry]  # filled at the next bar's open
        assert rsi[exit_ - 1] is not None and rsi[exit_ - 1] > 70, trade
        assert float(trade["exit_price"]) == bars["open"][exit_]
        between = [r for r in rsi[entry : exit_ - 1] if r is not None]
        assert all(r <= 70 for r in between)  # no earlier exit signal while long
