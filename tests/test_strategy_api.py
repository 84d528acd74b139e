"""Unit tests of the strategy API (components/strategies/api.py), driven through the engine protocol.

Bars are fed as BarChunks split at every possible size, as the market providers would, so the
tests hold the API to its promises without a database: warm-up W + 1, indicator values that do
not depend on chunking, a causality check that catches a peeking indicator, the order helpers'
Insight fields, and one clear error per misuse.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.market.base import BarChunk, chunk_from_columns
from components.registry import lookup, typed_config
from components.strategies.api import (
    Context,
    Strategy,
    StrategyError,
    pct_change,
    register_strategy,
    rolling_max,
    rolling_mean,
    rolling_min,
    rolling_std,
    shift,
)
from components.strategies.base import FLAT, LONG, SHORT, Insight

SYMBOLS = ("AAA", "BBB")


def make_bars(n_steps: int = 60, seed: int = 1, holes: bool = True) -> dict[str, np.ndarray]:
    """Return the columns of ``n_steps`` clock steps over SYMBOLS; BBB starts late and has holes."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_steps):
        for s in range(len(SYMBOLS)):
            if s == 1 and (k < 5 or (holes and rng.random() < 0.15)):
                continue
            rows.append((k * 60_000_000, s))
    ts = np.array([r[0] for r in rows], dtype=np.int64)
    sym = np.array([r[1] for r in rows], dtype=np.int64)
    close = 100 + np.cumsum(rng.normal(0, 1, len(rows)))
    return {
        "ts_us": ts,
        "sym": sym,
        "open": close + rng.normal(0, 0.1, len(rows)),
        "high": close + 1.0,
        "low": close - 1.0,
        "close": close,
        "volume": np.full(len(rows), 10.0),
    }


def split(cols: dict[str, np.ndarray], steps_per_chunk: int) -> list[BarChunk]:
    """Cut the bars into chunks of ``steps_per_chunk`` whole clock steps (a chunked provider)."""
    stamps = np.unique(cols["ts_us"])
    out = []
    for i in range(0, len(stamps), steps_per_chunk):
        lo, hi = stamps[i], stamps[min(i + steps_per_chunk, len(stamps)) - 1]
        keep = (cols["ts_us"] >= lo) & (cols["ts_us"] <= hi)
        out.append(chunk_from_columns({k: v[keep] for k, v in cols.items()}))
    return out


def drive(strategy: Strategy, chunks: list[BarChunk]) -> list[Insight]:
    """Run the engine protocol over ``chunks``; return every insight in emission order."""
    strategy.start(SYMBOLS)
    out: list[Insight] = []
    for chunk in chunks:
        strategy.on_chunk(chunk)
        bounds = chunk.bounds.tolist()
        for k, ts in enumerate(chunk.step_ts.tolist()):
            out.extend(strategy.on_step(k, bounds[k], bounds[k + 1], ts, None) or [])
    return out


@dataclass
class Seen:
    calls: list[tuple[str, int, float, float, float]] = field(default_factory=list)


class Recorder(Strategy):
    """Record (symbol, bar index, close, sma now, sma prev) of every decide call."""

    name = "recorder"

    def __init__(self, window: int = 5, lookback: int | None = 5) -> None:
        super().__init__(None)
        self.window, self._lb, self.seen = window, lookback, Seen()

    def lookback(self) -> int | None:
        return self._lb

    def indicators(self, bars: Any) -> dict[str, Any]:
        return {"sma": rolling_mean(bars.close, self.window)}

    def decide(self, ctx: Context) -> None:
        self.seen.calls.append(
            (ctx.symbol, ctx.bar_index, ctx.now.close, ctx.now.sma, ctx.prev.sma)
        )


def test_decide_when_indicator_first_defined_at_w_then_first_call_is_bar_w_plus_1() -> None:
    # Arrange: SMA(5) is first defined at bar 4 (W = 4)
    strategy = Recorder(window=5)
    # Act
    drive(strategy, split(make_bars(), 1000))
    # Assert
    first = {}
    for symbol, bar, *_ in strategy.seen.calls:
        first.setdefault(symbol, bar)
    assert first == {"AAA": 5, "BBB": 5}
    assert all(not np.isnan(prev) for *_, prev in strategy.seen.calls)


def test_decide_when_no_indicators_then_first_call_is_bar_1() -> None:
    """backtesting.py starts next() at bar 1 when there is no indicator (W defaults to 0)."""

    class Plain(Strategy):
        name = "plain"

        def decide(self, ctx: Context) -> None:
            bars.append((ctx.symbol, ctx.bar_index))

    bars: list[tuple[str, int]] = []
    drive(Plain(), split(make_bars(10), 3))
    assert min(b for s, b in bars if s == "AAA") == 1 and min(b for s, b in bars if s == "BBB") == 1


@settings(max_examples=25, deadline=None)
@given(steps_per_chunk=st.integers(min_value=1, max_value=70), whole_history=st.booleans())
def test_indicators_when_chunked_any_size_then_values_equal_one_chunk(
    steps_per_chunk: int, whole_history: bool
) -> None:
    cols = make_bars()
    reference = Recorder(lookback=None if whole_history else 5)
    drive(reference, split(cols, 10_000))
    got = Recorder(lookback=None if whole_history else 5)
    drive(got, split(cols, steps_per_chunk))
    assert got.seen.calls == reference.seen.calls
    assert len(got.seen.calls) > 50


def test_indicators_when_value_peeks_at_next_bar_then_causality_error_names_it() -> None:
    class Peek(Strategy):
        name = "peek"

        def indicators(self, bars: Any) -> dict[str, Any]:
            nxt = np.append(bars.close[1:], np.nan)  # tomorrow's close: a lookahead bug
            return {"tomorrow": nxt}

        def decide(self, ctx: Context) -> None:
            return None

    with pytest.raises(StrategyError) as info:
        drive(Peek(), split(make_bars(), 7))
    assert re.match(
        r"^strategy 'peek': indicator 'tomorrow' changed its value from nan to "
        r"[-0-9.e]+ once later bars arrived \(lookback\(\)=None\) at AAA bar 6 \(1970-01-01T00:06:00\+00:00\); "
        r"fix: make it causal .*lookback\(\) \(None = the whole history\)\.$",
        str(info.value),
    ), str(info.value)


def test_indicators_when_lookback_too_short_for_a_cumulative_value_then_error() -> None:
    class Cumulative(Strategy):
        name = "cumulative"

        def lookback(self) -> int:
            return 3

        def indicators(self, bars: Any) -> dict[str, Any]:
            return {"total": np.cumsum(bars.close)}  # needs the whole history, not 3 bars

        def decide(self, ctx: Context) -> None:
            return None

    with pytest.raises(
        StrategyError, match=r"indicator 'total' changed its value .*lookback\(\)=3"
    ):
        drive(Cumulative(), split(make_bars(), 20))


def test_indicators_when_output_length_differs_then_error_names_strategy_bar_and_fix() -> None:
    class Short(Strategy):
        name = "short_output"

        def indicators(self, bars: Any) -> dict[str, Any]:
            return {"diff": np.diff(bars.close)}  # one value fewer than bars

        def decide(self, ctx: Context) -> None:
            return None

    with pytest.raises(StrategyError) as info:
        drive(Short(), split(make_bars(), 1000))
    assert re.match(
        r"^strategy 'short_output': indicator 'diff' returned \d+ values for \d+ bars at AAA bar \d+ "
        r"\(.+\); fix: return one value per input bar, NaN where it is not defined yet .*\.$",
        str(info.value),
    ), str(info.value)


def test_decide_when_it_raises_then_error_names_strategy_symbol_bar_and_fix() -> None:
    class Boom(Strategy):
        name = "boom"

        def decide(self, ctx: Context) -> None:
            if ctx.symbol == "BBB" and ctx.bar_index == 3:
                raise ZeroDivisionError("division by zero")

    with pytest.raises(StrategyError) as info:
        drive(Boom(), split(make_bars(), 4))
    assert re.match(
        r"^strategy 'boom': decide\(\) raised ZeroDivisionError: division by zero at BBB bar 3 "
        r"\(1970-01-01T00:\d\d:00\+00:00\); fix: correct Boom.decide \(the traceback is in runner.log\)\.$",
        str(info.value),
    ), str(info.value)


class OneOrder(Strategy):
    """Place the order ``place(ctx)`` once, on AAA's bar 6 (BBB has a bar at that step too)."""

    name = "one_order"

    def __init__(self, place: Any) -> None:
        super().__init__(None)
        self.place = place

    def decide(self, ctx: Context) -> None:
        if ctx.symbol == "AAA" and ctx.bar_index == 6:
            self.place(ctx)


def one(place: Any) -> list[Insight]:
    return drive(OneOrder(place), split(make_bars(8, holes=False), 1000))


def test_order_when_symbol_unknown_then_error_lists_symbols_and_suggests() -> None:
    with pytest.raises(StrategyError) as info:
        one(lambda ctx: ctx.buy(10, symbol="AAB"))
    assert str(info.value) == (
        "strategy 'one_order': order or lookup for unknown symbol 'AAB' (run symbols: AAA, BBB). "
        "Did you mean 'AAA'? at AAA bar 6 (1970-01-01T00:06:00+00:00); fix: use one of the run's "
        "symbols, or add it with symbols=[...]."
    )


def test_order_when_limit_type_without_price_then_error() -> None:
    with pytest.raises(
        StrategyError,
        match=r"^strategy 'one_order': buy\(\): a limit order needs a limit price at AAA bar 6 .*; fix: pass limit=<price>",
    ):
        one(lambda ctx: ctx.buy(10, order_type="limit"))


@pytest.mark.parametrize(
    ("place", "message"),
    [
        (lambda ctx: ctx.buy(0), r"quantity must be a whole number of units >= 1, was 0"),
        (lambda ctx: ctx.buy(2.5), r"quantity must be a whole number"),
        (lambda ctx: ctx.short(limit=-1.0), r"limit price must be a finite number > 0, was -1.0"),
        (lambda ctx: ctx.buy(stop_loss=5), r"stop_loss must be a fraction in \(0, 1\)"),
        (lambda ctx: ctx.buy(tif="week"), r"tif 'week' is not one of gtc, day"),
        (lambda ctx: ctx.buy(price=3), r"unknown argument\(s\) \['price'\]"),
        (
            lambda ctx: ctx.target_weights({"AAA": 1.5}),
            r"target weight 1.5 for 'AAA' is not in \[-1, 1\]",
        ),
    ],
)
def test_order_when_arguments_invalid_then_error_names_the_argument(
    place: Any, message: str
) -> None:
    with pytest.raises(StrategyError, match=message):
        one(place)


def test_orders_when_helpers_used_then_insights_carry_every_order_field() -> None:
    def place(ctx: Context) -> None:
        ctx.buy(100, limit=99.5, stop_loss=0.05, take_profit=0.1, tif="day", reason="dip")
        ctx.short(50, stop=98.0, symbol="BBB")
        ctx.close()
        ctx.target_weights({"AAA": 0.5, "BBB": -0.25})

    got = one(place)
    close = got[0].value
    ts = 6 * 60_000_000
    assert got == [
        Insight(ts, 0, LONG, "dip", close, 0.0, 100, None, "limit", 99.5, None, "day", 0.05, 0.1),
        Insight(ts, 1, SHORT, "short", got[1].value, 0.0, 50, None, "stop", None, 98.0, "gtc"),
        Insight(ts, 0, FLAT, "close", close),
        Insight(ts, 0, LONG, "rebalance", close, 0.0, None, 0.5),
        Insight(ts, 1, SHORT, "rebalance", got[4].value, 0.0, None, -0.25),
    ]
    assert got[1].value == got[4].value != 0.0  # BBB's own close at this step


def test_sell_and_cover_when_position_on_that_side_then_flat_else_nothing() -> None:
    """AAA is short 7 and BBB long 3 in the bound view: only cover (AAA) and sell (BBB) act."""

    def place(ctx: Context) -> None:
        ctx.sell()  # AAA is short: nothing
        ctx.cover(reason="cover_aaa")
        ctx.sell(symbol="BBB", reason="sell_bbb")
        ctx.cover(symbol="BBB")  # BBB is long: nothing

    strategy = OneOrder(place)
    strategy.bind(FakeView())
    got = drive(strategy, split(make_bars(8, holes=False), 1000))
    assert [(i.sym, i.view, i.reason, i.quantity) for i in got] == [
        (0, FLAT, "cover_aaa", None),
        (1, FLAT, "sell_bbb", None),
    ]
    with pytest.raises(
        StrategyError, match=r"sell\(\) exits the whole position and takes no quantity"
    ):
        one(lambda ctx: ctx.sell(quantity=3))


class FakeView:
    """A hand-written BrokerView stub (STYLE P10: no MagicMock)."""

    def __init__(self) -> None:
        self.cash = 12_345.0
        self.positions = {0: -7, 1: 3}

    def position_of(self, sym: int) -> int:
        return self.positions[sym]

    def equity(self) -> float:
        return 20_000.0

    def working_orders(self, sym: int) -> list[Any]:
        return [("order", sym)]


def test_context_when_broker_view_bound_then_position_cash_equity_and_orders_come_from_it() -> None:
    seen: list[tuple] = []

    def place(ctx: Context) -> None:
        seen.append(
            (ctx.position, ctx.position_of("BBB"), ctx.cash, ctx.equity, ctx.working_orders)
        )

    strategy = OneOrder(place)
    strategy.bind(FakeView())
    drive(strategy, split(make_bars(8, holes=False), 1000))
    assert seen == [(-7, 3, 12_345.0, 20_000.0, [("order", 0)])]


def test_context_when_no_broker_view_then_cash_is_a_clear_error() -> None:
    with pytest.raises(StrategyError, match=r"ctx.cash and ctx.equity need an engine that binds"):
        one(lambda ctx: ctx.cash)


def test_rebalance_when_called_then_once_per_step_with_each_symbols_bar() -> None:
    class Rebalancer(Strategy):
        name = "rebalancer"

        def indicators(self, bars: Any) -> dict[str, Any]:
            return {"ret": pct_change(bars.close, 2)}

        def rebalance(self, ctx: Context) -> None:
            steps.append((ctx.ts, sorted(ctx.bars), ctx.ready, ctx.symbol))

    steps: list[tuple] = []
    cols = make_bars(12)
    drive(Rebalancer(), split(cols, 5))
    assert [s[0] for s in steps] == sorted({s[0] for s in steps})  # once per step
    assert steps[0][0] == 3 * 60_000_000 and steps[0][2] == ["AAA"]  # AAA: W = 2, first bar 3
    assert all(s[3] is None and set(s[2]) <= set(s[1]) for s in steps)


def test_target_when_vectorised_then_insight_only_where_target_changes() -> None:
    class Flip(Strategy):
        name = "flip"

        def target(self, bars: Any) -> Any:
            out = np.full(len(bars), np.nan)
            idx = np.arange(bars.start, bars.start + len(bars))
            out[idx % 4 == 0] = 1.0
            out[idx % 4 == 2] = -1.0
            return out

    views = [(i.sym, i.view) for i in drive(Flip(), split(make_bars(12, holes=False), 5))]
    a = [v for s, v in views if s == 0]
    assert a[:3] == [SHORT, LONG, SHORT] and all(x != y for x, y in itertools.pairwise(a))


def test_target_when_value_not_a_view_then_error() -> None:
    class Half(Strategy):
        name = "half"

        def target(self, bars: Any) -> Any:
            return np.full(len(bars), 0.5)

    with pytest.raises(
        StrategyError, match=r"target\(\) returned 0.5 .*fix: return \+1 \(long\), 0"
    ):
        drive(Half(), split(make_bars(5), 10))


def test_start_when_two_decision_hooks_then_error() -> None:
    class Both(Strategy):
        name = "both"

        def decide(self, ctx: Context) -> None:
            return None

        def target(self, bars: Any) -> Any:
            return None

    with pytest.raises(StrategyError, match=r"defines decide and target; define exactly one"):
        Both().start(SYMBOLS)


def test_helpers_when_compared_with_plain_python_then_equal() -> None:
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    assert np.array_equal(
        rolling_max(x, 3, lag=1), [np.nan, np.nan, np.nan, 4, 4, 5, 9, 9], equal_nan=True
    )
    assert np.array_equal(rolling_min(x, 2), [np.nan, 1, 1, 1, 1, 5, 2, 2], equal_nan=True)
    assert np.allclose(rolling_mean(x, 4)[3:], [sum(x[i - 3 : i + 1]) / 4 for i in range(3, 8)])
    assert np.allclose(rolling_std(x, 4)[3:], [np.std(x[i - 3 : i + 1]) for i in range(3, 8)])
    assert np.array_equal(shift(x, 2)[2:], x[:-2]) and np.isnan(shift(x, 2)[:2]).all()
    with pytest.raises(ValueError, match="reads the future"):
        shift(x, -1)


def test_register_strategy_when_config_has_no_kind_then_schema_gets_one_and_keys_are_checked() -> (
    None
):
    @dataclass
    class TinyConfig:
        window: int = 3  # bars

        def __post_init__(self) -> None:
            if self.window < 1:
                raise ValueError(f"strategy.window must be >= 1, was {self.window}")

    @register_strategy("tiny_test", TinyConfig)
    class Tiny(Strategy):
        def decide(self, ctx: Context) -> None:
            return None

    entry = lookup("strategy", "tiny_test")
    config = typed_config("strategy", {"kind": "tiny_test", "window": 4})
    assert (config.kind, config.window, Tiny.name) == ("tiny_test", 4, "tiny_test")
    assert isinstance(entry.factory(config), Tiny) and entry.factory(config).config.window == 4
    with pytest.raises(Exception, match=r"strategy.window must be >= 1, was 0"):
        typed_config("strategy", {"kind": "tiny_test", "window": 0})
    with pytest.raises(
        Exception, match=r"strategy.windw: no such key .* Did you mean strategy.window\?"
    ):
        typed_config("strategy", {"kind": "tiny_test", "windw": 4})


class Ema(Strategy):
    """An EMA resumed from ``bars.known`` (recursive: no bounded window), decided every 3rd bar."""

    name = "ema"

    def __init__(self) -> None:
        super().__init__(None)
        self.calls: list[tuple[str, int, float]] = []

    def lookback(self) -> int:
        return 2

    def indicators(self, bars: Any) -> dict[str, Any]:
        ema = bars.known["ema"].copy()
        close = bars.close
        for j in range(bars.new_from, len(close)):
            t = bars.start + j
            ema[j] = close[j] if t == 0 else 0.8 * ema[j - 1] + 0.2 * close[j]
        return {"ema": ema}

    def decide_when(self, bars: Any) -> Any:
        return np.arange(bars.start, bars.start + len(bars)) % 3 == 0

    def decide(self, ctx: Context) -> None:
        self.calls.append((ctx.symbol, ctx.bar_index, ctx.now.ema))


def test_known_when_recursive_indicator_resumed_then_equal_to_one_pass_over_the_history() -> None:
    cols = make_bars()
    got = Ema()
    drive(got, split(cols, 1))
    closes = cols["close"][cols["sym"] == 0]
    expected, value = [], 0.0
    for t, c in enumerate(closes):
        value = c if t == 0 else 0.8 * value + 0.2 * c
        if t >= 1 and t % 3 == 0:
            expected.append(("AAA", t, value))
    assert [c for c in got.calls if c[0] == "AAA"] == expected


def test_decide_when_when_false_then_decide_skipped_and_output_chunk_independent() -> None:
    cols = make_bars()
    one_chunk, tiny = Ema(), Ema()
    drive(one_chunk, split(cols, 1000))
    drive(tiny, split(cols, 2))
    assert one_chunk.calls == tiny.calls
    assert {bar % 3 for _, bar, _ in one_chunk.calls} == {0}


def test_sma_cross_when_short_option_then_down_cross_goes_short_and_up_cross_long() -> None:
    """DESIGN 5b reversal: with strategy.short=true a down-cross is a short view, not flat."""
    from components.strategies.builtin import SmaCross, SmaCrossConfig

    cols = make_bars(200)
    long_only = drive(SmaCross(SmaCrossConfig(fast=3, slow=8)), split(cols, 50))
    reversal = drive(SmaCross(SmaCrossConfig(fast=3, slow=8, short=True)), split(cols, 7))
    assert {i.view for i in long_only} == {LONG, FLAT}
    assert [i.view for i in reversal] == [SHORT if i.view == FLAT else LONG for i in long_only]
    assert [i[:6:] for i in reversal if i.view == LONG] == [
        i[:6] for i in long_only if i.view == LONG
    ]


def test_row_when_column_read_dynamically_then_value_equals_attribute_access() -> None:
    """Columns not named in the code are read lazily: getattr(ctx.now, name) still works."""

    class Dynamic(Strategy):
        name = "dynamic"

        def __init__(self) -> None:
            super().__init__(None)
            self.seen = Seen()

        def lookback(self) -> int:
            return 5

        def indicators(self, bars: Any) -> dict[str, Any]:
            return {"s" + "ma": rolling_mean(bars.close, 5)}

        def decide(self, ctx: Context) -> None:
            column = "s" + "ma"  # no attribute of that name in this class's code: read lazily
            now, prev = ctx.now, ctx.prev
            self.seen.calls.append(
                (ctx.symbol, ctx.bar_index, now.close, getattr(now, column), getattr(prev, column))
            )

    cols = make_bars()
    static, dynamic = Recorder(), Dynamic()
    drive(static, split(cols, 9))
    drive(dynamic, split(cols, 9))
    assert dynamic.seen.calls == static.seen.calls and len(static.seen.calls) > 50
    with pytest.raises(StrategyError, match=r"no column 'nope' at this bar"):
        one(lambda ctx: ctx.now.nope)


def test_target_when_it_peeks_at_the_next_bar_then_causality_error() -> None:
    class PeekTarget(Strategy):
        name = "peek_target"

        def target(self, bars: Any) -> Any:
            rising = np.append(bars.close[1:] > bars.close[:-1], False)  # tomorrow's move
            return np.where(rising, 1.0, 0.0)

    with pytest.raises(
        StrategyError, match=r"^strategy 'peek_target': target\(\) changed its value"
    ):
        drive(PeekTarget(), split(make_bars(), 5))


@settings(max_examples=20, deadline=None)
@given(steps_per_chunk=st.integers(min_value=1, max_value=150))
def test_history_when_lookback_bounded_then_old_bars_dropped_and_calls_equal_whole_history(
    steps_per_chunk: int,
) -> None:
    """A bounded lookback keeps only lookback - 1 + 8 bars before each chunk (memory bounded by
    chunk and lookback, not by the run), and decisions equal those over the whole history."""
    cols = make_bars(n_steps=600, seed=3)
    whole = Recorder(lookback=None)
    drive(whole, split(cols, 10_000))
    bounded = Recorder(lookback=5)
    drive(bounded, split(cols, steps_per_chunk))
    assert bounded.seen.calls == whole.seen.calls and len(whole.seen.calls) > 900
    for s, h in enumerate(bounded._histories):
        assert h.base > 0, "the bars before the kept tail were never dropped"
        assert len(h.cols["ts"]) <= 2 * max(64, steps_per_chunk + 5 - 1 + 8)
        stamps = cols["ts_us"][cols["sym"] == s]  # the kept tail is the symbol's last bars
        np.testing.assert_array_equal(h.view("ts", h.base, h.n), stamps[h.base : h.n])


@settings(max_examples=40, deadline=None)
@given(steps_per_chunk=st.integers(1, 70), seed=st.integers(0, 50))
def test_active_steps_when_engine_skips_inactive_steps_then_same_insights_and_skipped_ones_empty(
    steps_per_chunk: int, seed: int
) -> None:
    """The engine's hint (Strategy.on_step): a step marked inactive returns nothing, so skipping
    it, as runner/engine.py does, changes no insight, for decide, decide_when and rebalance."""
    from components.strategies.builtin import SmaCross, SmaCrossConfig

    class Rebalancer(Strategy):
        name = "rebalancer"

        def indicators(self, bars: Any) -> dict[str, Any]:
            return {"ret": pct_change(bars.close, 2)}

        def rebalance(self, ctx: Context) -> None:
            ctx.target_weights({s: 0.1 for s in ctx.ready})

    cols = make_bars(90, seed=seed)
    makers = (lambda: SmaCross(SmaCrossConfig(fast=2, slow=5)), Recorder, Rebalancer)
    for make in makers:
        every, skipping = make(), make()  # the first is called on every step, the second not
        every.start(SYMBOLS)
        skipping.start(SYMBOLS)
        want: list[Insight] = []
        got: list[Insight] = []
        marked = 0
        for chunk in split(cols, steps_per_chunk):
            every.on_chunk(chunk)
            skipping.on_chunk(chunk)
            active = skipping.active_steps
            assert active is not None and len(active) == chunk.n_steps
            bounds = chunk.bounds.tolist()
            for k, ts in enumerate(chunk.step_ts.tolist()):
                out = every.on_step(k, bounds[k], bounds[k + 1], ts, None)
                want.extend(out or [])
                if active[k]:
                    got.extend(skipping.on_step(k, bounds[k], bounds[k + 1], ts, None) or [])
                else:
                    marked += 1
                    assert out is None  # the promise: an inactive step has nothing to say
        assert got == want
        if isinstance(every, Recorder):
            assert every.seen.calls == skipping.seen.calls
        assert marked > 0  # the warm-up steps at least are marked inactive
