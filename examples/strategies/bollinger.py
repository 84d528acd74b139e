"""Bollinger-band mean reversion, long and short, with limit entries and a stop-loss bracket.

Flat and close below the lower band: buy at a limit of that close (a day order), with a stop
``stop_loss`` below the decision close; flat and close above the upper band: the mirror short.
Long and close back at or above the middle band: sell; short and close at or below it: cover.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.strategies.api import Strategy, register_strategy, rolling_mean, rolling_std


@dataclass
class BollingerConfig:
    window: int = 20  # bars in the moving average and standard deviation of closes
    width: float = 2.0  # band half-width, in standard deviations
    stop_loss: float = 0.05  # stop this fraction away from the decision close (0.05 = 5 %)
    size: int = 100  # units per entry

    def __post_init__(self) -> None:
        if self.window < 2 or self.width <= 0 or not 0 < self.stop_loss < 1 or self.size < 1:
            raise ValueError(
                f"strategy.window ({self.window}) must be >= 2, strategy.width ({self.width}) > 0, "
                f"strategy.stop_loss ({self.stop_loss}) in (0, 1), strategy.size ({self.size}) >= 1; "
                "try strategy.window=20 strategy.width=2 strategy.stop_loss=0.05"
            )


@register_strategy("bollinger", BollingerConfig)
class Bollinger(Strategy):
    def lookback(self) -> int:
        return self.config.window

    def indicators(self, bars):
        mid = rolling_mean(bars.close, self.config.window)
        half = self.config.width * rolling_std(bars.close, self.config.window)
        return {"mid": mid, "upper": mid + half, "lower": mid - half}

    def decide(self, ctx):
        c, now = self.config, ctx.now
        if ctx.position == 0 and not ctx.working_orders:
            if now.close < now.lower:
                ctx.buy(c.size, limit=now.close, stop_loss=c.stop_loss, tif="day")
            elif now.close > now.upper:
                ctx.short(c.size, limit=now.close, stop_loss=c.stop_loss, tif="day")
        elif ctx.position > 0 and now.close >= now.mid:
            ctx.sell()
        elif ctx.position < 0 and now.close <= now.mid:
            ctx.cover()
