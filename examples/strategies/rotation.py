"""Multi-asset momentum rotation: once a month, hold the ``top_n`` symbols with the best trailing
return over ``lookback_bars`` bars, each at an equal target weight; sell the rest."""

from __future__ import annotations

from dataclasses import dataclass

from components.strategies.api import Strategy, pct_change, register_strategy


@dataclass
class RotationConfig:
    lookback_bars: int = 20  # bars of trailing return used to rank the symbols
    top_n: int = 2  # symbols held after each monthly rebalance
    min_return: float = 0.0  # hold only symbols whose trailing return (a fraction) is above this

    def __post_init__(self) -> None:
        if self.lookback_bars < 1 or self.top_n < 1:
            raise ValueError(
                f"strategy.lookback_bars ({self.lookback_bars}) and strategy.top_n ({self.top_n}) "
                "must be >= 1; try strategy.lookback_bars=20 strategy.top_n=2"
            )


@register_strategy("rotation", RotationConfig)
class Rotation(Strategy):
    def on_start(self) -> None:
        self.month = None

    def lookback(self) -> int:
        return self.config.lookback_bars + 1

    def indicators(self, bars):
        return {"momentum": pct_change(bars.close, self.config.lookback_bars)}

    def rebalance(self, ctx):
        month = (ctx.time.year, ctx.time.month)
        if month == self.month:
            return
        self.month, c = month, self.config
        ranked = sorted((-b.momentum, s) for s, b in ctx.bars.items() if b.ready)
        chosen = [s for m, s in ranked[: c.top_n] if -m > c.min_return]
        weights = {s: 0.0 for s in ctx.ready if ctx.position_of(s) and s not in chosen}
        ctx.target_weights(weights | {s: 1.0 / c.top_n for s in chosen})
