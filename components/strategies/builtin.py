"""Built-in strategies: ``sma_cross`` and ``rsi_revert`` (reference semantics, DESIGN section 5)
and ``momentum_rotation`` (reads analytics snapshots)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from components.market.base import BarChunk
from components.registry import register
from components.strategies.base import FLAT, LONG, SHORT, EventStrategy, Insight
from components.strategies.indicators import previous_nonzero, rolling_sum


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


class SmaCross(EventStrategy):
    """Long on an up-cross of SMA(fast) over SMA(slow), flat on a down-cross; exact ties skipped."""

    name = "sma_cross"

    def __init__(self, fast: int, slow: int, short: bool = False) -> None:
        super().__init__()
        self.fast, self.slow = fast, slow
        self.down_view = SHORT if short else FLAT

    def start(self, symbols: tuple[str, ...]) -> None:
        n = len(symbols)
        self._tail = [np.empty(0) for _ in range(n)]  # last slow-1 closes of each symbol
        self._count = [0] * n  # bars seen per symbol
        self._last_sign = [0] * n  # most recent non-zero sign of fast - slow

    def on_chunk(self, chunk: BarChunk) -> None:
        events: list[tuple[int, Insight]] = []
        for s in np.unique(chunk.sym).tolist():
            rows = np.flatnonzero(chunk.sym == s)
            events.extend(self._symbol_events(s, rows, chunk))
        self._set_events(events)

    def _symbol_events(
        self, s: int, rows: np.ndarray, chunk: BarChunk
    ) -> list[tuple[int, Insight]]:
        fast, slow = self.fast, self.slow
        tail, first = self._tail[s], self._count[s]  # `first` = bar index of rows[0]
        ext = np.concatenate((tail, chunk.close[rows]))
        self._count[s] = first + len(rows)
        self._tail[s] = ext[-(slow - 1) :]
        base = first - len(tail)  # bar index of ext[0]
        slow_sum = rolling_sum(ext, slow)  # slow_sum[j] ends at ext[j + slow - 1]
        if not len(slow_sum):
            return []
        fast_sum = rolling_sum(ext, fast)[slow - fast :]
        fast_ma, slow_ma = fast_sum / fast, slow_sum / slow
        end_bar = base + np.arange(slow - 1, len(ext))  # bar index of each window's last bar
        new = end_bar >= first  # windows whose last bar is in this chunk
        fast_ma, slow_ma, end_bar = fast_ma[new], slow_ma[new], end_bar[new]
        sign = np.sign(fast_ma - slow_ma).astype(np.int64)
        prev = previous_nonzero(sign, self._last_sign[s])
        nonzero = sign[sign != 0]
        if len(nonzero):
            self._last_sign[s] = int(nonzero[-1])
        evaluated = end_bar >= slow  # first evaluated bar is W + 1 = slow
        up = np.flatnonzero(evaluated & (sign > 0) & (prev < 0))
        down = np.flatnonzero(evaluated & (sign < 0) & (prev > 0))
        row_of = rows[end_bar - first]
        out = []
        for j, view, reason in [(j, LONG, "sma_up_cross") for j in up.tolist()] + [
            (j, self.down_view, "sma_down_cross") for j in down.tolist()
        ]:
            row = int(row_of[j])
            out.append(
                (row, (int(chunk.ts[row]), s, view, reason, float(fast_ma[j]), float(slow_ma[j])))
            )
        return out


class RsiRevert(EventStrategy):
    """Long when Wilder RSI < oversold, flat when RSI > overbought."""

    name = "rsi_revert"

    def __init__(self, period: int, oversold: float, overbought: float) -> None:
        super().__init__()
        self.period, self.oversold, self.overbought = period, oversold, overbought

    def start(self, symbols: tuple[str, ...]) -> None:
        n = len(symbols)
        # per symbol: [bars seen, previous close, sum of ups, sum of downs, AU, AD]
        self._state: list[list[Any]] = [[0, 0.0, 0.0, 0.0, 0.0, 0.0] for _ in range(n)]

    def on_chunk(self, chunk: BarChunk) -> None:
        events: list[tuple[int, Insight]] = []
        period, lo_th, hi_th = self.period, self.oversold, self.overbought
        closes, syms, stamps = chunk.close.tolist(), chunk.sym.tolist(), chunk.ts.tolist()
        for row, (close, s) in enumerate(zip(closes, syms, strict=True)):
            st = self._state[s]
            t = st[0]
            st[0] = t + 1
            if t == 0:
                st[1] = close
                continue
            change = close - st[1]
            st[1] = close
            up = change if change > 0 else 0.0
            dn = -change if change < 0 else 0.0
            if t < period:
                st[2] += up
                st[3] += dn
                continue
            if t == period:
                st[4] = (st[2] + up) / period
                st[5] = (st[3] + dn) / period
                continue  # W = period: RSI first defined here, first evaluated at W + 1
            st[4] = st[4] * (period - 1) / period + up / period
            st[5] = st[5] * (period - 1) / period + dn / period
            au, ad = st[4], st[5]
            rsi = (50.0 if au == 0 else 100.0) if ad == 0 else 100.0 - 100.0 / (1.0 + au / ad)
            if rsi < lo_th:
                events.append((row, (stamps[row], s, LONG, "rsi_oversold", rsi, lo_th)))
            elif rsi > hi_th:
                events.append((row, (stamps[row], s, FLAT, "rsi_overbought", rsi, hi_th)))
        self._set_events(events)


class MomentumRotation:
    """Hold the top_n universe symbols by trailing return; rebalance when the snapshot changes."""

    name = "momentum_rotation"
    uses_analytics = True

    def __init__(self, top_n: int, min_return: float) -> None:
        self.top_n, self.min_return = top_n, min_return

    def start(self, symbols: tuple[str, ...]) -> None:
        self._index = {name: i for i, name in enumerate(symbols)}
        self._last_snapshot: int | None = None
        self._held: set[int] = set()

    def on_chunk(self, chunk: BarChunk) -> None:
        return None

    def on_step(self, k: int, lo: int, hi: int, ts: int, snapshot: Any) -> list[Insight] | None:
        if snapshot is None or snapshot.snapshot_us == self._last_snapshot:
            return None
        self._last_snapshot = snapshot.snapshot_us
        ranked = sorted(
            (
                (-float(ret), name, float(ret), float(rank))
                for name, ret, rank in zip(
                    snapshot.symbols, snapshot.trailing_return, snapshot.return_rank, strict=True
                )
                if name in self._index
            )
        )
        chosen = {
            self._index[name]: (ret, rank)
            for _, name, ret, rank in ranked[: self.top_n]
            if ret > self.min_return
        }
        target = set(chosen)
        out: list[Insight] = [
            (ts, s, FLAT, "momentum_exit", 0.0, 0.0) for s in sorted(self._held - target)
        ]
        out += [
            (ts, s, LONG, "momentum_enter", *chosen[s]) for s in sorted(target - self._held)
        ]  # exits free cash first
        self._held = target
        return out or None


@register("strategy", "sma_cross", SmaCrossConfig)
def make_sma_cross(config: SmaCrossConfig) -> SmaCross:
    return SmaCross(config.fast, config.slow, config.short)


@register("strategy", "rsi_revert", RsiRevertConfig)
def make_rsi_revert(config: RsiRevertConfig) -> RsiRevert:
    return RsiRevert(config.period, config.oversold, config.overbought)


@register("strategy", "momentum_rotation", MomentumRotationConfig)
def make_momentum_rotation(config: MomentumRotationConfig) -> MomentumRotation:
    return MomentumRotation(config.top_n, config.min_return)
