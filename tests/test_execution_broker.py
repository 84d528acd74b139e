"""SimulatedBroker + ExecutionHandler (issue 10): order types, gap and same-bar rules, brackets,
partial fills, borrow, commissions, reversal and the cash/margin rule, driven bar by bar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.execution.broker import CommissionConfig, _rows_of
from components.execution.orders import OrdersConfig
from components.strategies.base import FLAT, LONG, SHORT
from tests.execution_harness import DAY, Desk


def test_market_entry_when_spread_and_costs_then_entry_at_open_plus_spread_exit_at_raw_open() -> (
    None
):
    # Arrange
    desk = Desk(commission=CommissionConfig(fixed=1.0, rate=0.001), spread=0.0005)
    desk.bar(100.0)
    desk.view(LONG)
    # Act
    desk.bar(186.31, c=190.0)
    desk.view(FLAT)
    desk.bar(193.69)
    # Assert: DESIGN 5b arithmetic, GOOG's first costs trade
    (trade,) = desk.trades()
    assert trade.entry_price == pytest.approx(186.403155, rel=1e-12)
    assert trade.exit_price == 193.69 and trade.size == 100 and trade.exit_reason == "signal"
    assert trade.fees == pytest.approx(40.0093155, abs=1e-9)
    assert trade.pnl == pytest.approx(688.6751845, abs=1e-9)
    assert desk.broker.equity() == pytest.approx(1_000_000 + trade.pnl, abs=1e-6)


def test_limit_buy_when_open_below_limit_then_fills_at_open_gap_rule() -> None:
    desk = Desk()
    desk.bar(100.0)
    desk.view(LONG, order_type="limit", limit=99.0)
    desk.bar(97.0, h=98.0, low=96.0, c=97.5)
    assert [(f.price, f.quantity) for f in desk.fills()] == [(97.0, 100)]


def test_limit_buy_when_range_touches_limit_then_fills_at_limit_else_keeps_working() -> None:
    desk = Desk()
    desk.bar(100.0)
    desk.view(LONG, order_type="limit", limit=98.0)
    desk.bar(100.0, h=101.0, low=98.5, c=100.0)  # not touched
    assert desk.fills() == [] and len(desk.broker.working_orders(0)) == 1
    desk.bar(100.0, h=101.0, low=97.0, c=99.0)  # touched within the bar
    assert [f.price for f in desk.fills()] == [98.0] and desk.broker.position_of(0) == 100


def test_limit_sell_when_short_entry_then_fills_at_limit_or_better() -> None:
    desk = Desk()
    desk.bar(100.0)
    desk.view(SHORT, order_type="limit", limit=102.0)
    desk.bar(100.0, h=103.0, low=99.0, c=101.0)
    assert [(f.side, f.price) for f in desk.fills()] == [("sell", 102.0)]
    assert desk.broker.position_of(0) == -100


def test_stop_buy_when_open_gaps_above_stop_then_fills_at_open_else_at_stop() -> None:
    desk = Desk(symbols=("AAA", "BBB"))
    desk.bar(100.0, sym=0)
    desk.bar(100.0, sym=1)
    desk.view(LONG, sym=0, order_type="stop", stop=103.0)
    desk.view(LONG, sym=1, order_type="stop", stop=103.0)
    desk.bar(105.0, h=106.0, low=104.0, sym=0)  # gapped above the stop: the open
    desk.bar(101.0, h=104.0, low=100.5, sym=1)  # reached within the bar: the stop
    assert [(f.symbol, f.price) for f in desk.fills()] == [("AAA", 105.0), ("BBB", 103.0)]


def test_stop_limit_when_triggered_within_bar_and_limit_above_stop_then_fills_at_stop() -> None:
    desk = Desk()
    desk.bar(100.0)
    desk.view(LONG, order_type="stop_limit", stop=103.0, limit=104.0)
    desk.bar(101.0, h=105.0, low=100.0, c=104.5)
    assert [f.price for f in desk.fills()] == [103.0]


def test_stop_limit_when_limit_below_stop_then_not_this_bar_then_works_as_limit() -> None:
    """Stop then limit inside one bar cannot be ordered: pessimistically not filled that bar."""
    desk = Desk()
    desk.bar(100.0)
    desk.view(LONG, order_type="stop_limit", stop=103.0, limit=102.0)
    desk.bar(101.0, h=104.0, low=101.5, c=103.5)  # triggers; 102 also in range, order unknown
    assert desk.fills() == []
    desk.bar(103.0, h=103.5, low=101.0, c=102.0)  # now a limit at 102
    assert [f.price for f in desk.fills()] == [102.0]


def test_day_order_when_not_filled_in_its_first_bar_then_expires_and_is_recorded() -> None:
    desk = Desk()
    desk.bar(100.0)
    desk.view(LONG, order_type="limit", limit=90.0, tif="day")
    desk.bar(100.0, h=101.0, low=99.0)
    desk.bar(89.0, h=90.0, low=88.0)  # would have filled, but it expired
    assert desk.fills() == [] and desk.codes() == ["EXPIRED_DAY"]
    assert desk.handler.metrics.denied_by_reason == {"EXPIRED_DAY": 1}


# -- brackets: gap rule, same-bar rule, event order ------------------------------------------------
def bracketed_long(entry_open: float, **bar: float) -> Desk:
    desk = Desk(orders=OrdersConfig(stop_loss=0.02, take_profit=0.04))
    desk.bar(100.0)  # decision close 100: SL 98, TP 104
    desk.view(LONG)
    desk.bar(entry_open, **bar)
    return desk


def test_bracket_when_fill_bar_opens_below_stop_then_exits_at_that_open_pnl_zero() -> None:
    desk = bracketed_long(97.0, h=99.0, low=96.0, c=98.5)
    (trade,) = desk.trades()
    assert (trade.entry_price, trade.exit_price, trade.exit_reason) == (97.0, 97.0, "stop_loss")
    assert trade.entry_ts == trade.exit_ts and trade.pnl == 0.0


def test_bracket_when_fill_bar_opens_above_take_profit_then_exits_at_that_open() -> None:
    desk = bracketed_long(105.0, h=106.0, low=104.5, c=105.5)
    (trade,) = desk.trades()
    assert (trade.exit_price, trade.exit_reason, trade.pnl) == (105.0, "take_profit", 0.0)


def test_bracket_when_bar_reaches_both_levels_then_stop_is_tested_first() -> None:
    desk = bracketed_long(100.0, h=105.0, low=97.0, c=101.0)
    (trade,) = desk.trades()
    assert (trade.exit_price, trade.exit_reason) == (98.0, "stop_loss")


def test_bracket_when_bar_opens_beyond_take_profit_but_low_reaches_stop_then_stop_loss() -> None:
    """backtesting.py's pessimistic rule: the stop is tested first even above the take profit."""
    desk = bracketed_long(100.5, c=100.5)
    desk.bar(106.0, h=107.0, low=97.5, c=100.0)
    assert [(t.exit_price, t.exit_reason) for t in desk.trades()] == [(98.0, "stop_loss")]


def test_bracket_when_levels_set_then_they_come_from_the_decision_close_and_never_move() -> None:
    desk = bracketed_long(101.0, h=102.0, low=100.0, c=101.5)  # levels 98 / 104, not the entry's
    (view_sl, view_tp) = desk.broker.working_orders(0)
    assert (view_sl.stop, view_tp.limit) == (98.0, 104.0) and view_sl.is_bracket
    desk.bar(103.0, h=110.0, low=102.5, c=109.0)
    assert [(t.exit_price, t.exit_reason) for t in desk.trades()] == [(104.0, "take_profit")]


def test_bracket_when_strategy_exit_fills_at_open_then_brackets_cancelled_before_checked() -> None:
    desk = bracketed_long(100.0, h=101.0, low=99.0, c=100.0)
    desk.view(FLAT)
    desk.bar(99.5, h=100.0, low=90.0, c=92.0)  # the low would hit the stop
    (trade,) = desk.trades()
    assert (trade.exit_price, trade.exit_reason) == (99.5, "signal")
    assert desk.broker.working_orders(0) == [] and desk.codes() == []


def test_bracket_when_short_then_levels_mirror_and_stop_is_above() -> None:
    desk = Desk(orders=OrdersConfig(stop_loss=0.02, take_profit=0.04))
    desk.bar(100.0)
    desk.view(SHORT)  # SL 102, TP 96
    desk.bar(100.0, h=101.0, low=99.0)
    desk.bar(100.0, h=103.0, low=95.0)
    (trade,) = desk.trades()
    assert (trade.size, trade.exit_price, trade.exit_reason) == (-100, 102.0, "stop_loss")


def test_bracket_when_exited_then_strategy_is_flat_at_that_close_and_may_enter_again() -> None:
    desk = bracketed_long(100.0, h=100.5, low=97.0, c=97.5)
    assert desk.broker.position_of(0) == 0
    desk.view(LONG)  # new levels from 97.5
    desk.bar(97.6, h=98.0, low=97.0, c=97.8)
    assert desk.broker.position_of(0) == 100 and len(desk.trades()) == 1


# -- reversal, partial fills, borrow, commissions, cash ---------------------------------------------
def test_reversal_when_short_view_while_long_then_two_trades_at_the_same_open() -> None:
    desk = Desk(commission=CommissionConfig(fixed=1.0, rate=0.001), spread=0.0005)
    desk.bar(100.0)
    desk.view(LONG)
    desk.bar(100.0, c=110.0)
    desk.view(SHORT)
    desk.bar(110.0, c=108.0)
    (closed,) = desk.trades()
    assert (closed.exit_price, closed.exit_reason, closed.size) == (110.0, "reverse", 100)
    assert desk.broker.position_of(0) == -100
    lot = desk.broker.lots[0][0]
    assert lot.entry_ts == closed.exit_ts and lot.price == pytest.approx(110.0 * (1 - 0.0005))
    assert lot.fee == pytest.approx(1.0 + 0.001 * 100 * 110.0 * (1 - 0.0005))


def test_partial_fills_when_volume_capped_then_rest_works_on_and_sums_to_quantity() -> None:
    desk = Desk(max_volume_fraction=0.1, units=120)
    desk.bar(100.0)
    desk.view(LONG)
    for _ in range(3):
        desk.bar(100.0, v=500.0)  # 50 units per bar
    fills = desk.fills()
    assert [(f.quantity, f.remaining) for f in fills] == [(50, 70), (50, 20), (20, 0)]
    assert {f.signal_seq for f in fills} == {fills[0].signal_seq}
    assert desk.broker.position_of(0) == 120 and desk.broker.pending == {}


def test_partial_fills_when_halted_mid_order_then_remainder_cancelled_and_recorded() -> None:
    desk = Desk(max_volume_fraction=0.1, units=120)
    desk.bar(100.0)
    desk.view(LONG)
    desk.bar(100.0, v=500.0)
    desk.handler.activate_kill_switch("desk", desk.ts)
    (denial,) = desk.rows["denials"]
    assert (denial.code, denial.quantity) == ("CANCELLED_BY_HALT", 70)
    assert sum(f.quantity for f in desk.fills()) + denial.quantity == 120


def test_borrow_when_short_held_ten_days_then_charged_act_365_on_notional_at_the_close() -> None:
    desk = Desk(borrow_rate=0.0365)
    desk.bar(100.0)
    desk.view(SHORT)
    desk.bar(100.0)  # short 100 @ 100 at this open
    for _ in range(10):
        desk.bar(100.0)
    # 0.0365 / 365 per day x 100 units x 100 = 1.0 per day
    assert desk.broker.borrow_paid == pytest.approx(10.0, rel=1e-12)
    assert desk.broker.equity() == pytest.approx(1_000_000 - 10.0, rel=1e-12)


def test_borrow_when_short_covered_then_accrued_to_the_exit_at_the_exit_price() -> None:
    desk = Desk(borrow_rate=0.0365)
    desk.bar(100.0)
    desk.view(SHORT)
    desk.bar(100.0)
    desk.view(FLAT)
    desk.bar(50.0)  # one day at the exit price 50: 0.5
    assert desk.broker.borrow_paid == pytest.approx(0.5, rel=1e-12)
    assert desk.trades()[0].pnl == pytest.approx(5_000.0)  # borrow is not part of trade pnl


@pytest.mark.parametrize(("units", "expected"), [(50, 1.0), (300, 3.0), (1000, 5.0)])
def test_per_unit_commission_when_min_and_max_then_clamped_per_fill(
    units: int, expected: float
) -> None:
    commission = CommissionConfig(per_unit=0.01, min=1.0, max=5.0)
    desk = Desk(commission=commission, units=units)
    desk.bar(10.0)
    desk.view(LONG)
    desk.bar(10.0)
    assert [f.fees for f in desk.fills()] == [pytest.approx(expected)]


def test_entry_when_cash_insufficient_then_denied_through_the_handler_and_counted() -> None:
    desk = Desk(cash=5_000.0)
    desk.bar(100.0)
    desk.view(LONG)
    desk.bar(100.0)  # 100 x 100 > 5,000
    (denial,) = desk.rows["denials"]
    assert (denial.code, denial.observed, denial.limit_value) == (
        "INSUFFICIENT_CASH",
        10_000.0,
        5_000.0,
    )
    assert desk.handler.metrics.denied_by_reason == {"INSUFFICIENT_CASH": 1}
    assert desk.broker.rejections == 1 and desk.fills() == []


def test_short_entry_when_gross_exposure_would_exceed_equity_then_insufficient_margin() -> None:
    desk = Desk(symbols=("AAA", "BBB"), cash=15_000.0)
    desk.bar(100.0, sym=0)
    desk.bar(100.0, sym=1)
    desk.view(SHORT, sym=0)
    desk.bar(100.0, sym=0)  # short 10,000 of AAA: buying power 15,000 + 10,000 - 2 x 10,000
    desk.view(SHORT, sym=1)
    desk.bar(100.0, sym=1)
    assert desk.broker.position_of(0) == -100 and desk.broker.position_of(1) == 0
    assert desk.codes() == ["INSUFFICIENT_MARGIN"]


def test_equity_when_short_then_marked_at_the_close() -> None:
    desk = Desk()
    desk.bar(100.0)
    desk.view(SHORT)
    desk.bar(100.0, c=90.0)
    assert desk.broker.equity() == pytest.approx(1_000_000 + 1_000.0)
    assert desk.ts - DAY > 0


# -- sizing through the handler ---------------------------------------------------------------------
def test_target_weight_when_a_step_rebalances_then_exit_legs_are_submitted_before_entries() -> None:
    from components.execution.sizing import TargetWeight
    from components.strategies.base import Insight

    desk = Desk(symbols=("AAA", "BBB"), sizing=TargetWeight(1.0), cash=10_000.0)
    desk.bar(100.0, sym=0)
    desk.bar(100.0, sym=1)
    desk.view(LONG, sym=1, weight=0.5)
    desk.bar(100.0, sym=1)  # BBB: 50 units
    # Act: one step wants AAA at 0.8 and BBB flat; the BBB exit must come first
    desk.handler.on_insights(
        desk.ts,
        [
            Insight(desk.ts, 0, LONG, "rotate", weight=0.8),
            Insight(desk.ts, 1, FLAT, "rotate"),
        ],
    )
    # Assert
    signals = desk.rows["signals"][1:]
    assert [(s.symbol, s.side, s.quantity, s.intent) for s in signals] == [
        ("BBB", "sell", 50, "close"),
        ("AAA", "buy", 80, "open"),
    ]


def test_percent_equity_when_spread_then_units_from_the_fill_price_after_spread() -> None:
    from components.execution.sizing import PercentEquity

    desk = Desk(sizing=PercentEquity(0.5), cash=10_000.0, spread=0.01)
    desk.bar(100.0)
    desk.view(LONG)  # estimate at the close: 50 units
    desk.bar(80.0)  # at the fill: floor(0.5 x 10,000 / 80.8) = 61
    (fill,) = desk.fills()
    assert (fill.quantity, fill.price) == (61, pytest.approx(80.8))
    assert desk.rows["signals"][0].quantity == 50


def test_working_orders_when_limit_order_waits_then_strategy_sees_its_fields() -> None:
    desk = Desk()
    desk.bar(100.0)
    desk.view(LONG, order_type="limit", limit=95.0, tif="gtc")
    (order,) = desk.broker.working_orders(0)
    assert (order.side, order.quantity, order.order_type, order.limit, order.stop) == (
        "buy",
        100,
        "limit",
        95.0,
        None,
    )
    assert order.tif == "gtc" and not order.is_bracket


def test_new_view_when_opposite_entry_working_then_that_entry_is_cancelled_and_recorded() -> None:
    desk = Desk()
    desk.bar(100.0)
    desk.view(LONG, order_type="limit", limit=90.0)
    desk.view(FLAT)
    assert desk.broker.pending == {} and desk.codes() == ["CANCELLED_BY_STRATEGY"]


@given(
    n_symbols=st.integers(1, 12),
    present=st.lists(st.booleans(), min_size=12, max_size=12),
    shuffle=st.booleans(),
    keys=st.sets(st.integers(0, 11), max_size=12),
    lo=st.integers(0, 5),
)
def test_rows_of_when_any_step_layout_then_equals_a_scan_in_row_order(
    n_symbols: int, present: list[bool], shuffle: bool, keys: set[int], lo: int
) -> None:
    """The direct lookup of symbols' rows equals scanning the step, whatever its layout."""
    step = [s for s in range(n_symbols) if present[s]]
    if shuffle:
        step.reverse()  # a step not in symbol order
    syms = [99] * lo + step + [99, 99]  # rows of other steps around it
    rows = range(lo, lo + len(step))
    keys = {k for k in keys if k < n_symbols}
    assert _rows_of(keys, rows, syms) == [r for r in rows if syms[r] in keys]
