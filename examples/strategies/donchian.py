"""Donchian channel breakout: buy 100 on a close above the prior ``entry``-bar high, sell all on a
close below the prior ``exit``-bar low (long only; decisions at the close, fills at the next open).

Run it from the repository root::

    RUNNER_PLUGINS=examples.strategies.donchian python -m runner +experiment=backtest \\
        strategy=donchian symbols=[GOOG] hydra.searchpath=[file://examples/conf]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.strategies.api import Strategy, register_strategy, rolling_max, rolling_min


@dataclass
class DonchianConfig:
    entry: int = 20  # bars in the breakout channel: upper[t] = max(high[t-entry .. t-1])
    exit: int = 10  # bars in the exit channel: lower[t] = min(low[t-exit .. t-1])

    def __post_init__(self) -> None:
        if self.entry < 1 or self.exit < 1:
            raise ValueError(
                f"strategy.entry and strategy.exit must be >= 1 bar, were {self.entry} and "
                f"{self.exit}; try strategy.entry=20 strategy.exit=10"
            )


@register_strategy("donchian", DonchianConfig)
class Donchian(Strategy):
    def lookback(self) -> int:
        return max(self.config.entry, self.config.exit) + 1  # the window plus the current bar

    def indicators(self, bars):
        return {
            "upper": rolling_max(bars.high, self.config.entry, lag=1),
            "lower": rolling_min(bars.low, self.config.exit, lag=1),
        }

    def decide(self, ctx):
        if ctx.position == 0 and ctx.now.close > ctx.now.upper:
            ctx.buy(100)
        elif ctx.position > 0 and ctx.now.close < ctx.now.lower:
            ctx.sell()


@register_strategy("donchian_vector", DonchianConfig)
class DonchianVector(Donchian):
    """The same rules in the vectorised form: a target per bar, no Python call per bar."""

    decide = Strategy.decide  # this one decides with target() instead

    def target(self, bars):
        return np.where(
            bars.close > bars.upper, 1.0, np.where(bars.close < bars.lower, 0.0, np.nan)
        )
