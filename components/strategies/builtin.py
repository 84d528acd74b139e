"""Built-in strategies, written with the strategy API (components/strategies/api.py):
``sma_cross`` and ``rsi_revert`` (reference semantics, DESIGN section 5) and ``momentum_rotation``
(reads analytics snapshots). Each is also a worked example of one API feature: ``decide_when``
(decide only on the rare bars where something can happen), ``bars.known`` (a recursive indicator
resumed from its last value) and ``rebalance`` with ``ctx.snapshot``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from components.strategies.api import Context, Strategy, register_strategy, rolling_mean, shift


@dataclass
class SmaCrossConfig:
    kind: str = "sma_cross"
    fast: int = 10  # bars in the fast simple moving average of closes
    slow: int = 30  # bars in the slow simple moving average of closes
    short: bool = False  # true: reversal (a down-cross closes any long and goes short)

    def __post_init__(self) -> None:
        if not 1 <= self.fast < self.slow:
            raise ValueError(
                f"strategy.fast must be >= 1 and below strategy.slow ({self.slow}), was {self.fast}; "
                "try strategy.fast=10 strategy.slow=30"
            )


@dataclass
class RsiRevertConfig:
    kind: str = "rsi_revert"
    period: int = 14  # Wilder RSI period, in bars
    oversold: float = 30.0  # buy when flat and RSI falls below this (0-100)
    overbought: float = 70.0  # sell when long and RSI rises above this (0-100)

    def __post_init__(self) -> None:
        if self.period < 1:
            raise ValueError(
                f"strategy.period must be >= 1 bar, was {self.period}; try strategy.period=14"
            )
        if not 0 <= self.oversold < self.overbought <= 100:
            raise ValueError(
                f"strategy.oversold ({self.oversold}) must be below strategy.overbought "
                f"({self.overbought}), both within 0-100; try strategy.oversold=30 strategy.overbought=70"
            )


@dataclass
class MomentumRotationConfig:
    kind: str = "momentum_rotation"
    top_n: int = 2  # hold the top_n symbols by trailing return of the latest analytics snapshot
    min_return: float = 0.0  # ...but only those whose trailing return is above this (fraction)

    def __post_init__(self) -> None:
        if self.top_n < 1:
            raise ValueError(f"strategy.top_n must be >= 1, was {self.top_n}; try strategy.top_n=2")


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


@register_strategy("sma_cross", SmaCrossConfig)
class SmaCross(Strategy):
    """Long on an up-cross of SMA(fast) over SMA(slow), flat (or short) on a down-cross.

    ``d = fast - slow``; a cross at t compares sign(d[t]) with the most recent non-zero sign at a
    bar k, W <= k < t (exact ties skipped). W = slow - 1, first evaluated bar slow.
    """

    def on_start(self) -> None:
        self.last_sign = dict.fromkeys(self.symbols, 0)  # most recent non-zero sign of d

    def lookback(self) -> int:
        return self.config.slow + 1  # decide_when compares this bar's sign with the previous one

    def indicators(self, bars: Any) -> dict[str, Any]:
        return {
            "fast": rolling_mean(bars.close, self.config.fast),
            "slow": rolling_mean(bars.close, self.config.slow),
        }

    def decide_when(self, bars: Any) -> Any:
        sign = np.sign(bars.fast - bars.slow)
        return sign != shift(sign, 1)  # only a change of sign can be a cross

    def decide(self, ctx: Context) -> None:
        now, prev, symbol = ctx.now, ctx.prev, ctx.symbol
        last = _sign(prev.fast - prev.slow) or self.last_sign[symbol]
        sign = _sign(now.fast - now.slow)
        self.last_sign[symbol] = sign or last
        if sign > 0 and last < 0:
            ctx.buy(reason="sma_up_cross", value=now.fast, reference=now.slow)
        elif sign < 0 and last > 0:
            order = ctx.short if self.config.short else ctx.close
            order(reason="sma_down_cross", value=now.fast, reference=now.slow)


@register_strategy("rsi_revert", RsiRevertConfig)
class RsiRevert(Strategy):
    """Long when Wilder RSI < oversold, flat when RSI > overbought (W = period)."""

    def lookback(self) -> int:
        return self.config.period + 1  # the first average needs bars 0..period

    def indicators(self, bars: Any) -> dict[str, Any]:
        """Wilder's recursion, resumed from ``bars.known`` (the values of earlier chunks)."""
        period, close = self.config.period, bars.close.tolist()
        au, ad, rsi = (bars.known[k].copy() for k in ("au", "ad", "rsi"))
        for j in range(max(bars.new_from, 1), len(close)):
            t = bars.start + j  # this bar's index in the symbol's history
            if t < period:
                continue
            if t == period:  # the first averages: plain means of the first `period` changes
                ups = dns = 0.0
                for i in range(j - period + 1, j + 1):
                    change = close[i] - close[i - 1]
                    ups += change if change > 0 else 0.0
                    dns += -change if change < 0 else 0.0
                au[j], ad[j] = ups / period, dns / period
            else:
                change = close[j] - close[j - 1]
                up = change if change > 0 else 0.0
                dn = -change if change < 0 else 0.0
                au[j] = au[j - 1] * (period - 1) / period + up / period
                ad[j] = ad[j - 1] * (period - 1) / period + dn / period
            a, d = float(au[j]), float(ad[j])
            rsi[j] = (50.0 if a == 0 else 100.0) if d == 0 else 100.0 - 100.0 / (1.0 + a / d)
        return {"rsi": rsi, "au": au, "ad": ad}

    def decide_when(self, bars: Any) -> Any:
        return (bars.rsi < self.config.oversold) | (bars.rsi > self.config.overbought)

    def decide(self, ctx: Context) -> None:
        rsi, c = ctx.now.rsi, self.config
        if rsi < c.oversold:
            ctx.buy(reason="rsi_oversold", value=rsi, reference=c.oversold)
        elif rsi > c.overbought:
            ctx.close(reason="rsi_overbought", value=rsi, reference=c.overbought)


@register_strategy("momentum_rotation", MomentumRotationConfig)
class MomentumRotation(Strategy):
    """Hold the top_n universe symbols by trailing return; rebalance when the snapshot changes."""

    uses_analytics = True

    def on_start(self) -> None:
        self.last_snapshot: int | None = None
        self.held: set[str] = set()

    def rebalance(self, ctx: Context) -> None:
        snapshot = ctx.snapshot
        if snapshot is None or snapshot.snapshot_us == self.last_snapshot:
            return
        self.last_snapshot = snapshot.snapshot_us
        universe = set(ctx.symbols)
        ranked = sorted(
            (-float(ret), name, float(ret), float(rank))
            for name, ret, rank in zip(
                snapshot.symbols, snapshot.trailing_return, snapshot.return_rank, strict=True
            )
            if name in universe
        )
        chosen = {
            name: (ret, rank)
            for _, name, ret, rank in ranked[: self.config.top_n]
            if ret > self.config.min_return
        }
        for name in sorted(self.held - set(chosen), key=ctx.symbols.index):  # exits free cash first
            ctx.close(symbol=name, reason="momentum_exit", value=0.0, reference=0.0)
        for name in sorted(set(chosen) - self.held, key=ctx.symbols.index):
            ret, rank = chosen[name]
            ctx.buy(symbol=name, reason="momentum_enter", value=ret, reference=rank)
        self.held = set(chosen)
