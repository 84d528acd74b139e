"""The statistics function on hand-computed cases (issue 12), and what a run puts in summary.json."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.results.stats import STAT_KEYS, compute_stats, trades_frame
from tests.helpers import make_market_db, read_shared_csv, run_in_process

DAY = 86_400_000_000
# Mon 2024-01-01 .. Fri 2024-01-05, Mon 2024-01-08: six sessions, no weekend bars (252 a year)
CLOCK = [pd.Timestamp(d, tz="UTC").value // 1000 for d in pd.bdate_range("2024-01-01", periods=6)]
EQUITY = pd.DataFrame({"ts": CLOCK, "equity": [100.0, 110.0, 99.0, 121.0, 110.0, 132.0]})
# symbol A: 5 units 10 -> 12 over steps 1..3 (pnl 10); symbol B: 5 units 20 -> 18 over steps 2..4
# (pnl -10, fees 1, net -11)
TRADES = pd.DataFrame(
    {
        "symbol": ["A", "B"],
        "entry_ts": [CLOCK[1], CLOCK[2]],
        "entry_price": [10.0, 20.0],
        "exit_ts": [CLOCK[3], CLOCK[4]],
        "exit_price": [12.0, 18.0],
        "size": [5, 5],
        "fees": [0.0, 1.0],
        "pnl": [10.0, -11.0],
    }
)


def test_stats_when_two_symbols_then_figures_equal_the_hand_computation() -> None:
    """Combined equity 100 110 99 121 110 132; peaks 100 110 110 121 121 132.

    drawdown 0 0 .1 0 1/11 0 -> max -10 %, two drawdowns (steps 1..3: 2 days, 3..5: Thu to Mon, 4 days),
    avg -(0.1 + 1/11) / 2; exposure: A holds steps 1-3, B 2-4 -> 4 of 6 steps; trade returns
    pnl / (|size| entry): +0.2, -0.11; buy & hold (A 10 -> 13, B 20 -> 25): mean(30 %, 25 %).
    """
    # Act
    stats = compute_stats(
        EQUITY, TRADES, first_last_close={"A": (10.0, 13.0), "B": (20.0, 25.0)}, cash=100.0
    )
    # Assert
    daily = np.array([0.1, -0.1, 121 / 99 - 1, 110 / 121 - 1, 0.2])
    ann = 1.32 ** (252 / 5) - 1
    assert list(stats) == list(STAT_KEYS)
    assert stats["start"] == "2024-01-01T00:00:00+00:00"
    assert stats["end"] == "2024-01-08T00:00:00+00:00"
    assert stats["duration_days"] == 7.0
    assert stats["exposure_pct"] == pytest.approx(4 / 6 * 100)
    assert (stats["equity_final"], stats["equity_peak"]) == (132.0, 132.0)
    assert stats["return_pct"] == pytest.approx(32.0)
    assert stats["buy_hold_return_pct"] == pytest.approx(27.5)
    assert stats["return_ann_pct"] == pytest.approx(ann * 100, rel=1e-9)
    assert stats["volatility_ann_pct"] == pytest.approx(daily.std(ddof=1) * math.sqrt(252) * 100)
    assert stats["sharpe"] == pytest.approx(daily.mean() / daily.std(ddof=1) * math.sqrt(252))
    downside = math.sqrt(np.mean(np.minimum(daily, 0) ** 2))
    assert stats["sortino"] == pytest.approx(daily.mean() * 252 / (downside * math.sqrt(252)))
    assert stats["calmar"] == pytest.approx(ann / 0.1, rel=1e-9)
    assert stats["max_drawdown_pct"] == pytest.approx(-10.0)
    assert stats["avg_drawdown_pct"] == pytest.approx(-(0.1 + 1 / 11) / 2 * 100)
    assert stats["max_drawdown_duration_days"] == 4.0  # Thu 4th to Mon 8th
    assert stats["avg_drawdown_duration_days"] == 3.0  # (2 + 4) / 2
    assert stats["n_trades"] == 2 and stats["win_rate_pct"] == 50.0
    assert stats["best_trade_pct"] == pytest.approx(20.0)
    assert stats["worst_trade_pct"] == pytest.approx(-11.0)
    assert stats["avg_trade_pct"] == pytest.approx((math.sqrt(1.2 * 0.89) - 1) * 100)
    assert stats["max_trade_duration_days"] == stats["avg_trade_duration_days"] == 2.0
    assert stats["profit_factor"] == pytest.approx(0.2 / 0.11)
    assert stats["expectancy_pct"] == pytest.approx(4.5)
    assert stats["sqn"] == pytest.approx(-0.5 / 10.5)  # sqrt(2) * mean -0.5 / (10.5 sqrt(2))
    assert stats["total_fees"] == 1.0
    assert stats["turnover"] == pytest.approx(300 / 112)  # 5*(10+12) + 5*(20+18) over mean 112
    assert 0 < stats["psr"] < 1


def test_stats_when_no_trades_and_no_drawdown_then_undefined_figures_are_none() -> None:
    # Arrange
    equity = EQUITY.assign(equity=[100.0, 101, 102, 103, 104, 105])
    # Act
    stats = compute_stats(equity, trades_frame([]))
    # Assert
    assert stats["n_trades"] == 0 and stats["exposure_pct"] == 0.0
    assert stats["max_drawdown_pct"] == 0.0
    for key in ("win_rate_pct", "avg_drawdown_pct", "max_drawdown_duration_days", "sqn"):
        assert stats[key] is None, key
    assert stats["sortino"] is None  # no losing day: infinite, reported as undefined
    assert stats["buy_hold_return_pct"] is None  # no anchors given


def test_stats_when_weekend_bars_then_annualised_by_365() -> None:
    """A 24x7 market (bars every calendar day, 2 of 8 at weekends) annualises by 365, not 252."""
    # Arrange
    values = np.array([100.0, 110, 99, 121, 110, 132, 130, 135])
    equity = pd.DataFrame({"ts": [CLOCK[0] + k * DAY for k in range(8)], "equity": values})
    daily = values[1:] / values[:-1] - 1
    # Act
    stats = compute_stats(equity, trades_frame([]))
    # Assert
    assert stats["sharpe"] == pytest.approx(daily.mean() / daily.std(ddof=1) * math.sqrt(365))
    assert stats["return_ann_pct"] == pytest.approx((1.35 ** (365 / 7) - 1) * 100, rel=1e-9)


def test_trades_frame_when_namedtuples_then_their_field_names_are_columns() -> None:
    from typing import NamedTuple

    class Trade(NamedTuple):
        seq: int
        symbol: str
        entry_ts: int
        entry_price: float
        exit_ts: int
        exit_price: float
        size: int
        fees: float
        pnl: float
        exit_reason: str

    frame = trades_frame([Trade(1, "A", CLOCK[1], 10.0, CLOCK[3], 12.0, 5, 0.5, 9.5, "signal")])
    stats = compute_stats(EQUITY, frame)
    assert stats["total_fees"] == 0.5 and stats["best_trade_pct"] == pytest.approx(19.0)


@pytest.fixture(scope="module")
def two_symbol_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bars = read_shared_csv("yahoo_daily_orcl_yhoo_nvda_1995_2015.csv", ["ORCL", "NVDA"])
    return make_market_db(tmp_path_factory.mktemp("two") / "market.duckdb", bars)


def test_run_when_buffer_memory_then_stats_equal_the_persisted_run(
    two_symbol_db: Path, tmp_path: Path
) -> None:
    """buffer=memory stores no equity rows; the statistics must not depend on it."""
    # Act
    common = [f"db.path={two_symbol_db}", "symbols=[NVDA,ORCL]", "run.html=false"]
    _, stored = run_in_process(tmp_path / "duckdb", common)
    _, memory = run_in_process(tmp_path / "memory", [*common, "buffer=memory"])
    # Assert
    assert stored["stats"] == memory["stats"]
    report = (tmp_path / "duckdb" / "summary.md").read_text()
    assert "## Statistics" in report and all(f"`stats.{k}`" in report for k in STAT_KEYS)
    final = [
        ln
        for ln in (tmp_path / "memory" / "runner.log").read_text().splitlines()
        if "completed sma_cross" in ln
    ]
    st = memory["stats"]
    assert (
        f"return {st['return_pct']:+.2f} %, Sharpe {st['sharpe']:.2f}, "
        f"max drawdown {st['max_drawdown_pct']:.2f} %" in final[0]
    )
    assert stored["stats"]["n_trades"] == stored["n_trades"] > 10
    assert stored["stats"]["equity_final"] == pytest.approx(stored["final_equity"], rel=1e-12)
    assert stored["stats"]["return_pct"] == pytest.approx(stored["return_pct"], rel=1e-12)
    assert stored["stats"]["max_drawdown_pct"] == pytest.approx(-stored["max_drawdown_pct"])
    # buy & hold of two symbols: the mean of each one's close at bar 29 (sma_cross W) to its last
    bars = read_shared_csv("yahoo_daily_orcl_yhoo_nvda_1995_2015.csv", ["ORCL", "NVDA"])
    legs = [c.iloc[-1] / c.iloc[29] - 1 for _, c in bars.groupby("symbol")["close"]]
    assert stored["stats"]["buy_hold_return_pct"] == pytest.approx(np.mean(legs) * 100)


@settings(max_examples=60, deadline=None)
@given(
    n_trades=st.integers(0, 12),
    seed=st.integers(0, 10_000),
    with_fees=st.booleans(),
)
def test_trade_columns_when_records_then_same_stats_as_their_frame(
    n_trades: int, seed: int, with_fees: bool
) -> None:
    """What a run passes (``trade_columns``) and the frame path give the same statistics."""
    from components.execution.records import TradeRow
    from components.results.stats import trade_columns

    rng = np.random.default_rng(seed)
    clock = np.cumsum(rng.integers(1, 3, 60)) * DAY + CLOCK[0]
    equity = pd.DataFrame({"ts": clock, "equity": 1e4 * np.cumprod(1 + rng.normal(0, 0.01, 60))})
    rows = []
    for k in range(n_trades):
        entry, exit_ = sorted(rng.choice(len(clock), 2, replace=False).tolist())
        price_in, price_out = rng.uniform(5, 50, 2).tolist()
        size = int(rng.integers(-20, 21)) or 1
        fees = float(rng.uniform(0, 2)) if with_fees else 0.0
        pnl = (price_out - price_in) * size - fees
        values = {
            "seq": k,
            "symbol": "AB"[k % 2],
            "entry_ts": int(clock[entry]),
            "entry_price": price_in,
            "exit_ts": int(clock[exit_]),
            "exit_price": price_out,
            "size": size,
            "fees": fees,
            "pnl": pnl,
            "exit_reason": "signal",
        }
        rows.append(TradeRow(**{f: values.get(f, 0) for f in TradeRow._fields}))
    anchors = {"A": (10.0, 12.0)}
    assert compute_stats(equity, trade_columns(rows), first_last_close=anchors) == compute_stats(
        equity, trades_frame(rows), first_last_close=anchors
    )


@settings(max_examples=100, deadline=None)
@given(
    anchors=st.dictionaries(
        st.text("ABCDEFGH", min_size=1, max_size=4),
        st.tuples(st.floats(1.0, 1e4), st.floats(1.0, 1e4)),
        min_size=1,
        max_size=8,
    ),
    seed=st.integers(0, 1000),
)
def test_buy_hold_pct_when_anchors_come_in_any_order_then_the_same_float(
    anchors: dict[str, tuple[float, float]], seed: int
) -> None:
    """Issue 13: single runs (query order) and sweep jobs (symbol order) report the same figure."""
    import random

    from components.results.stats import _buy_hold_pct

    # Arrange
    keys = list(anchors)
    random.Random(seed).shuffle(keys)
    # Act / Assert
    assert _buy_hold_pct({k: anchors[k] for k in keys}) == _buy_hold_pct(anchors)
