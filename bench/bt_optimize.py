"""backtesting.py 0.6.6 ``Backtest.optimize`` on a sma_cross grid: the sweep benchmark's reference.

Run as its own process by ``bench/bench_sweep.py`` (``python -m bench.bt_optimize --fast 5 15
--slow 20 61 10``) so that its figure covers the same things ours does: interpreter start-up,
imports, reading the data, the grid. Prints one JSON line: combinations, optimize seconds, the
best parameters. A bench-only dependency: the package never imports backtesting.py.

The strategy is the runner's ``sma_cross``: buy 100 shares on an up-cross of the fast over the
slow simple moving average of closes while flat, close the position on a down-cross; orders fill
at the next bar's open, no commission.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

STARTED = time.perf_counter()

import pandas as pd  # noqa: E402 - timed as part of the process
from backtesting import Backtest, Strategy  # noqa: E402
from backtesting.lib import crossover  # noqa: E402

GOOG_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "goog_daily_2004_2013.csv"


def sma(values: object, n: int) -> pd.Series:
    return pd.Series(values).rolling(n).mean()


class SmaCross(Strategy):
    fast = 10
    slow = 30

    def init(self) -> None:
        self.fast_ma = self.I(sma, self.data.Close, self.fast)
        self.slow_ma = self.I(sma, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.fast_ma, self.slow_ma) and not self.position:
            self.buy(size=100)
        elif crossover(self.slow_ma, self.fast_ma) and self.position:
            self.position.close()


def load(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, parse_dates=["ts"]).set_index("ts")
    df.index.name = None
    return df.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bt_optimize")
    parser.add_argument("--csv", type=Path, default=GOOG_CSV)
    parser.add_argument("--fast", type=int, nargs=2, required=True, help="range(a, b)")
    parser.add_argument("--slow", type=int, nargs=3, required=True, help="range(a, b, step)")
    args = parser.parse_args()
    fast, slow = range(*args.fast), range(*args.slow)
    bt = Backtest(load(args.csv), SmaCross, cash=1_000_000, commission=0.0, finalize_trades=True)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = bt.optimize(fast=fast, slow=slow, maximize="Equity Final [$]")
    seconds = time.perf_counter() - started
    best = stats._strategy
    print(
        json.dumps(
            {
                "combinations": len(fast) * len(slow),
                "optimize_seconds": round(seconds, 3),
                "in_process_seconds": round(time.perf_counter() - STARTED, 3),
                "best": {"fast": int(best.fast), "slow": int(best.slow)},
            }
        )
    )


if __name__ == "__main__":
    main()
