"""The strategy API's two ways of taking a chunk apart give the same state and the same decisions.

``Strategy.on_chunk`` takes a rectangular chunk (every clock step holds the same symbols, in
symbol order) by reshaping it, any other chunk by a stable sort on the symbol (``_rect_width``).
Random bars (symbols that start late, bars missing or none), random chunk splits and strategies
for each hook are played through both paths; the chunk-wide state after every ``on_chunk``, each
symbol's history, what every decision saw (``ctx.now`` and ``ctx.prev``, eager and lazily read
columns) and every insight must be equal, byte for byte. The indicator helpers, which now fill
``np.empty`` buffers, keep the bits they had.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from components.market.base import BarChunk, chunk_from_columns
from components.strategies.api import (
    Context,
    Strategy,
    _rect_width,
    pct_change,
    rolling_max,
    rolling_mean,
    shift,
)
from components.strategies.base import Insight
from components.strategies.builtin import RsiRevert, RsiRevertConfig, SmaCross, SmaCrossConfig
from components.strategies.indicators import rolling_sum

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


def make_bars(
    n_steps: int, n_symbols: int, late: list[int], hole_p: float, seed: int
) -> dict[str, np.ndarray]:
    """Return bars of ``n_symbols`` symbols; symbol s starts at step ``late[s]`` and misses a bar
    with probability ``hole_p`` (0: every chunk after the last start is rectangular)."""
    rng = np.random.default_rng(seed)
    rows = [
        (k * 60_000_000, s)
        for k in range(n_steps)
        for s in range(n_symbols)
        if k >= late[s] and not (hole_p and rng.random() < hole_p)
    ]
    close = 100 + np.cumsum(rng.normal(0, 1, len(rows)))
    return {
        "ts_us": np.array([r[0] for r in rows], dtype=np.int64),
        "sym": np.array([r[1] for r in rows], dtype=np.int64),
        "open": close + rng.normal(0, 0.1, len(rows)),
        "high": close + 1.0,
        "low": close - 1.0,
        "close": close,
        "volume": rng.integers(1, 100, len(rows)).astype(np.float64),
    }


def split(cols: dict[str, np.ndarray], sizes: list[int]) -> list[BarChunk]:
    """Cut the bars into chunks of whole clock steps, ``sizes`` steps each (cycled)."""
    stamps = np.unique(cols["ts_us"])
    out, i, k = [], 0, 0
    while i < len(stamps):
        hi = min(i + sizes[k % len(sizes)], len(stamps))
        keep = (cols["ts_us"] >= stamps[i]) & (cols["ts_us"] <= stamps[hi - 1])
        out.append(chunk_from_columns({c: v[keep] for c, v in cols.items()}))
        i, k = hi, k + 1
    return out


class Seeing(Strategy):
    """decide() without decide_when: records every value it can read, eager or not."""

    name = "seeing"

    def lookback(self) -> int:
        return 4

    def indicators(self, bars: Any) -> dict[str, Any]:
        return {"hi3": rolling_max(bars.high, 3, lag=1), "ret": pct_change(bars.close, 2)}

    def decide(self, ctx: Context) -> None:
        # close and hi3 are named here (eager); ret, open... are read lazily by as_dict()
        self.seen.append((ctx.symbol, ctx.bar_index, ctx.now.close, ctx.prev.hi3))
        self.seen.append((ctx.now.as_dict(), ctx.prev.as_dict()))
        if ctx.now.close > ctx.now.hi3:
            ctx.buy(10)


class Stepper(Strategy):
    """rebalance(): reads every symbol's bar at the step."""

    name = "stepper"

    def indicators(self, bars: Any) -> dict[str, Any]:
        return {"sma": rolling_mean(bars.close, 3)}

    def decide_when(self, bars: Any) -> Any:
        return np.where(bars.close > bars.sma, 1.0, np.nan)  # NaN: not a decision bar

    def rebalance(self, ctx: Context) -> None:
        self.seen.append((ctx.ts, tuple(ctx.ready), {k: v.__dict__ for k, v in ctx.bars.items()}))
        ctx.target_weights({s: 0.1 for s in ctx.ready})


class Targeted(Strategy):
    """target(): the vectorised form."""

    name = "targeted"

    def lookback(self) -> int:
        return 6

    def indicators(self, bars: Any) -> dict[str, Any]:
        return {"sma": rolling_mean(bars.close, 5), "lag": shift(bars.close, 1)}

    def target(self, bars: Any) -> Any:
        return np.where(bars.close > bars.sma, 1.0, np.where(bars.close < bars.lag, 0.0, np.nan))


MAKERS = (
    lambda: SmaCross(SmaCrossConfig(fast=2, slow=5)),
    lambda: SmaCross(SmaCrossConfig(fast=3, slow=7, short=True)),
    lambda: RsiRevert(RsiRevertConfig(period=3, oversold=45, overbought=55)),
    Seeing,
    Stepper,
    Targeted,
)


def chunk_state(strategy: Strategy) -> list[Any]:
    """What on_chunk leaves for the steps, as comparable bytes and lists."""
    state: list[Any] = [
        strategy._bar_index.tobytes(),
        strategy._ready_mask.tobytes(),
        {c: v.tobytes() for c, v in strategy._full.items()},
        [(e[0], e[1]) for e in strategy._events],
        strategy.active_steps,
    ]
    if strategy._hook != "target":
        state += [strategy._ready_rows, strategy._sel_syms, strategy._step_lo, strategy._syms]
    for h in strategy._histories:
        live = slice(0, h.n - h.base)  # the bars it holds
        state.append((h.n, h.base, h.ready_from, {c: v[live].tobytes() for c, v in h.cols.items()}))
    return state


def play(make: Any, chunks: list[BarChunk], n_symbols: int, rect_path: bool) -> Any:
    strategy = make()
    strategy.seen = []
    strategy._rect_path = rect_path
    strategy.start(SYMBOLS[:n_symbols])
    states, insights, rect = [], [], 0
    for chunk in chunks:
        strategy.on_chunk(chunk)
        rect += bool(_rect_width(chunk))
        states.append(chunk_state(strategy))
        bounds = chunk.bounds.tolist()
        for k, ts in enumerate(chunk.step_ts.tolist()):
            out: list[Insight] | None = strategy.on_step(k, bounds[k], bounds[k + 1], ts, None)
            insights.extend(out or [])
    return states, strategy.seen, insights, rect


def compare(cols: dict[str, np.ndarray], sizes: list[int], n_symbols: int) -> int:
    """Play every strategy through both paths; return how many chunks were rectangular."""
    chunks = split(cols, sizes)
    rect = 0
    for make in MAKERS:
        fast = play(make, chunks, n_symbols, rect_path=True)
        slow = play(make, chunks, n_symbols, rect_path=False)
        assert slow[3] == fast[3]
        rect = fast[3]
        for k, (a, b) in enumerate(zip(fast[0], slow[0], strict=True)):
            assert a == b, f"{make().name}: state after chunk {k} differs"
        # repr: exact for floats, and NaN equals NaN
        assert repr(fast[1]) == repr(slow[1]), f"{make().name}: a decision saw other values"
        assert repr(fast[2]) == repr(slow[2]), f"{make().name}: insights differ"
    return rect


@settings(max_examples=60, deadline=None)
@given(
    n_symbols=st.integers(1, 4),
    n_steps=st.integers(1, 90),
    late=st.lists(st.integers(0, 30), min_size=4, max_size=4),
    hole_p=st.sampled_from([0.0, 0.0, 0.05, 0.3]),
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    seed=st.integers(0, 1000),
)
def test_on_chunk_when_rectangular_fast_path_then_state_and_decisions_equal_sorted_path(
    n_symbols: int, n_steps: int, late: list[int], hole_p: float, sizes: list[int], seed: int
) -> None:
    cols = make_bars(n_steps, n_symbols, late, hole_p, seed)
    compare(cols, sizes, n_symbols)


def test_on_chunk_when_symbols_start_late_then_later_chunks_take_the_fast_path() -> None:
    """Arrange bars where only the later chunks are rectangular; both paths run and agree."""
    cols = make_bars(120, 3, late=[0, 7, 33], hole_p=0.0, seed=5)
    rect = compare(cols, [9, 4, 25], 3)
    assert rect >= 4  # the chunks after step 33 at least


def test_on_chunk_when_bars_missing_then_no_fast_path_and_paths_agree() -> None:
    cols = make_bars(80, 4, late=[0, 0, 0, 0], hole_p=0.3, seed=2)
    assert compare(cols, [17], 4) == 0


def test_rect_width_when_chunk_shapes_vary_then_width_only_for_repeated_symbol_rows() -> None:
    def chunk(rows: list[tuple[int, int]]) -> BarChunk:
        ts = np.array([r[0] for r in rows], dtype=np.int64)
        ones = np.ones(len(rows))
        cols = {"ts_us": ts, "sym": np.array([r[1] for r in rows], dtype=np.int64)}
        return chunk_from_columns(
            {**cols, **dict.fromkeys(("open", "high", "low", "close"), ones), "volume": ones}
        )

    assert _rect_width(chunk([(1, 0), (1, 2), (2, 0), (2, 2)])) == 2
    assert _rect_width(chunk([(1, 1), (2, 1), (3, 1)])) == 1
    assert _rect_width(chunk([(1, 0), (1, 1), (2, 0), (3, 0), (3, 1)])) == 0  # a missing bar
    assert _rect_width(chunk([(1, 0), (2, 0), (2, 1), (3, 0), (3, 1)])) == 0  # a late symbol
    assert _rect_width(chunk([(1, 0), (1, 1), (2, 0), (2, 2)])) == 0  # another symbol
    assert _rect_width(chunk([])) == 0


def _shift_as_was(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if n < len(x):
        out[n:] = x[: len(x) - n]
    return out


def _rolling_mean_as_was(x: np.ndarray, window: int, lag: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) >= window:
        out[window - 1 :] = rolling_sum(x, window) / window
    return _shift_as_was(out, lag) if lag else out


finite_or_inf = st.floats(allow_nan=False, allow_infinity=True, width=64) | st.floats(-1e6, 1e6)


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(finite_or_inf | st.sampled_from([np.nan, -np.nan]), max_size=60),
    window=st.integers(1, 12),
    lag=st.integers(0, 3),
)
def test_helpers_when_any_values_then_same_bits_as_before_the_empty_buffers(
    values: list[float], window: int, lag: int
) -> None:
    """shift and rolling_mean fill a np.empty buffer now: the same bits as the np.full code."""
    x = np.array(values, dtype=np.float64)
    with np.errstate(all="ignore"):  # inf - inf and overflows are compared too
        want = _rolling_mean_as_was(x, window, lag).tobytes()
        assert rolling_mean(x, window, lag=lag).tobytes() == want
    assert shift(x, lag).tobytes() == _shift_as_was(x, lag).tobytes()


@settings(max_examples=80, deadline=None)
@given(values=st.lists(finite_or_inf, max_size=60), window=st.integers(1, 12))
def test_rolling_sum_when_values_without_nan_then_bits_equal_python_left_to_right_sums(
    values: list[float], window: int
) -> None:
    """rolling_sum adds left to right, as Python's reduce does (a NaN input's sign bit may not
    survive NaN + NaN alike in numpy's vector and scalar loops: left out)."""
    with np.errstate(all="ignore"):
        sums = [
            functools.reduce(operator.add, values[i : i + window])
            for i in range(len(values) - window + 1)
        ]
        got = rolling_sum(np.array(values, dtype=np.float64), window)
    assert got.tobytes() == np.array(sums, dtype=np.float64).tobytes()
