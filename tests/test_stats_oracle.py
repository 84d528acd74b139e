"""Issue 12 acceptance: our statistics equal backtesting.py 0.6.6's own on the same runs.

backtesting.py runs the same rules in the test (100 units, fill at the next open, cash 1e6, no
costs, ``finalize_trades=False`` so the position open at the end is not a trade, as ours). Its
trade list is checked against ours first, so a mismatch in a figure is a mismatch in the figure.
Sharpe, Sortino and volatility are checked against empyrical-reloaded on the run's daily equity
(read back from results.duckdb), annualised by 252: these daily markets close at weekends.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import duckdb
import empyrical
import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest, Strategy

from tests.helpers import make_market_db, read_shared_csv, run_in_process

CASH = 1_000_000
# backtesting.py figure -> our stats key; durations are Timedeltas there, days here
SAME_MEANING = {
    "Exposure Time [%]": "exposure_pct",
    "Equity Final [$]": "equity_final",
    "Equity Peak [$]": "equity_peak",
    "Return [%]": "return_pct",
    "Buy & Hold Return [%]": "buy_hold_return_pct",
    "Return (Ann.) [%]": "return_ann_pct",
    "Calmar Ratio": "calmar",
    "Max. Drawdown [%]": "max_drawdown_pct",
    "Avg. Drawdown [%]": "avg_drawdown_pct",
    "Max. Drawdown Duration": "max_drawdown_duration_days",
    "Avg. Drawdown Duration": "avg_drawdown_duration_days",
    "Win Rate [%]": "win_rate_pct",
    "Best Trade [%]": "best_trade_pct",
    "Worst Trade [%]": "worst_trade_pct",
    "Avg. Trade [%]": "avg_trade_pct",
    "Max. Trade Duration": "max_trade_duration_days",
    "Avg. Trade Duration": "avg_trade_duration_days",
    "Profit Factor": "profit_factor",
    "Expectancy [%]": "expectancy_pct",
    "SQN": "sqn",
}


def _sma(values: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(values).rolling(n).mean().to_numpy()


def _wilder_rsi(values: np.ndarray, period: int) -> np.ndarray:
    """RSI from DESIGN section 5: defined from bar ``period`` on (NaN before)."""
    close = np.asarray(values, dtype=float)
    out = np.full(len(close), np.nan)
    change = np.diff(close)
    up, dn = np.maximum(change, 0), np.maximum(-change, 0)
    if len(change) < period:
        return out
    au, ad = up[:period].mean(), dn[:period].mean()
    for t in range(period, len(close)):
        if t > period:
            au = au * (period - 1) / period + up[t - 1] / period
            ad = ad * (period - 1) / period + dn[t - 1] / period
        out[t] = (50.0 if au == 0 else 100.0) if ad == 0 else 100 - 100 / (1 + au / ad)
    return out


class SmaCrossBt(Strategy):
    """sma_cross as DESIGN section 5 words it: exact ties skipped, last non-zero sign remembered."""

    fast = 10
    slow = 30

    def init(self) -> None:
        self.f = self.I(_sma, self.data.Close, self.fast)
        self.s = self.I(_sma, self.data.Close, self.slow)
        self.last_sign: float | None = None

    def next(self) -> None:
        if self.last_sign is None:  # first evaluated bar: the previous bar (W) is the first defined
            self.last_sign = float(np.sign(self.f[-2] - self.s[-2]))
        sign = float(np.sign(self.f[-1] - self.s[-1]))
        if sign > 0 and self.last_sign < 0 and not self.position:
            self.buy(size=100)
        elif sign < 0 and self.last_sign > 0 and self.position:
            self.position.close()
        if sign:
            self.last_sign = sign


class RsiRevertBt(Strategy):
    period = 14

    def init(self) -> None:
        self.rsi = self.I(_wilder_rsi, self.data.Close, self.period)

    def next(self) -> None:
        if not self.position and self.rsi[-1] < 30:
            self.buy(size=100)
        elif self.position and self.rsi[-1] > 70:
            self.position.close()


ORACLES = {"sma_cross": SmaCrossBt, "rsi_revert": RsiRevertBt}


COSTS = {"cash": 10_000_000, "commission": (1.0, 0.001), "spread": 0.0005}
COSTS_OVERRIDES = [
    "broker.cash=10000000",
    "broker.commission.fixed=1.0",
    "broker.commission.rate=0.001",
    "broker.spread=0.0005",
]


def _backtesting_stats(bars: pd.DataFrame, strategy: str, costs: bool = False) -> pd.Series:
    data = pd.DataFrame(
        {
            "Open": bars["open"].to_numpy(),
            "High": bars["high"].to_numpy(),
            "Low": bars["low"].to_numpy(),
            "Close": bars["close"].to_numpy(),
            "Volume": bars["volume"].to_numpy(),
        },
        index=pd.DatetimeIndex(bars["ts"].dt.tz_localize(None)),
    )
    bt = Backtest(
        data,
        ORACLES[strategy],
        **(COSTS if costs else {"cash": CASH, "commission": 0}),
        exclusive_orders=False,
        trade_on_close=False,
        finalize_trades=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open": ours are reported, not closed
        return bt.run()


def _figure(value: object) -> float | None:
    if isinstance(value, pd.Timedelta):
        return value / pd.Timedelta(days=1)
    value = float(value)  # type: ignore[arg-type]
    return None if math.isnan(value) else value


@pytest.fixture(scope="module")
def markets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, pd.DataFrame]]:
    base = tmp_path_factory.mktemp("oracle")
    goog = read_shared_csv("goog_daily_2004_2013.csv")
    orcl = read_shared_csv("yahoo_daily_orcl_yhoo_nvda_1995_2015.csv", ["ORCL"])
    return {
        "GOOG": (make_market_db(base / "goog.duckdb", goog), goog),
        "ORCL": (make_market_db(base / "orcl.duckdb", orcl), orcl),
    }


@pytest.mark.parametrize(
    ("symbol", "strategy", "costs"),
    [
        ("GOOG", "sma_cross", False),
        ("GOOG", "rsi_revert", False),
        ("ORCL", "sma_cross", False),
        ("ORCL", "rsi_revert", False),
        ("GOOG", "sma_cross", True),  # DESIGN 5b costs: fees and spread enter every trade figure
    ],
)
def test_stats_when_single_symbol_daily_run_then_equal_backtesting_py_and_empyrical(
    symbol: str, strategy: str, costs: bool, markets: dict, tmp_path: Path
) -> None:
    # Arrange
    db, bars = markets[symbol]
    expected = _backtesting_stats(bars, strategy, costs)
    # Act
    code, summary = run_in_process(
        tmp_path / "run",
        [
            f"db.path={db}",
            f"strategy={strategy}",
            f"symbols=[{symbol}]",
            "run.html=false",
            *(COSTS_OVERRIDES if costs else []),
        ],
    )
    stats = summary["stats"]
    # Assert: the same trades first (else the figures compare different runs)
    assert code == 0
    ours = pd.read_csv(tmp_path / "run" / "trades.csv")
    theirs = expected["_trades"]
    assert len(ours) == len(theirs) == stats["n_trades"] == expected["# Trades"] > 5
    assert list(pd.to_datetime(ours["entry_ts"]).dt.tz_localize(None)) == list(theirs["EntryTime"])
    assert list(pd.to_datetime(ours["exit_ts"]).dt.tz_localize(None)) == list(theirs["ExitTime"])
    assert list(ours["entry_price"]) == pytest.approx(list(theirs["EntryPrice"]), rel=1e-12)
    if costs:
        assert stats["total_fees"] == pytest.approx(expected["Commissions [$]"], rel=1e-9)
    for bt_name, key in SAME_MEANING.items():
        want = _figure(expected[bt_name])
        assert (stats[key] is None) == (want is None), (bt_name, stats[key], want)
        if want is not None:
            assert stats[key] == pytest.approx(want, rel=1e-9, abs=1e-12), bt_name
    assert stats["start"] == expected["Start"].tz_localize("UTC").isoformat()
    assert stats["end"] == expected["End"].tz_localize("UTC").isoformat()
    assert stats["duration_days"] == expected["Duration"] / pd.Timedelta(days=1)
    # Assert: the ratios are empyrical's on the daily equity returns, 252 periods a year
    con = duckdb.connect(str(tmp_path / "run" / "results.duckdb"), read_only=True)
    equity = con.execute("SELECT ts, equity FROM equity ORDER BY ts").df().set_index("ts")
    con.close()
    daily = equity["equity"].resample("D").last().dropna().pct_change().dropna()
    assert stats["sharpe"] == pytest.approx(
        empyrical.sharpe_ratio(daily, annualization=252), rel=1e-9
    )
    assert stats["sortino"] == pytest.approx(
        empyrical.sortino_ratio(daily, annualization=252), rel=1e-9
    )
    assert stats["volatility_ann_pct"] == pytest.approx(
        empyrical.annual_volatility(daily, annualization=252) * 100, rel=1e-9
    )
    assert stats["return_ann_pct"] == pytest.approx(
        empyrical.annual_return(daily, annualization=252) * 100, rel=1e-9
    )
