"""Hypothesis invariants of the broker (issue 10): random bars, views, order types, costs,
brackets, partial fills and borrow; checked after every bar.

- the equity identity of DESIGN 5b: equity = starting cash + net realized pnl - entry fees of
  open lots + their unrealized pnl - borrow charged;
- no fill outside the bar's [low, high] (the open is inside it; entries compared before spread);
- every order's fills sum to its quantity, or the remainder is cancelled and recorded, or it is
  still working.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.execution.broker import CommissionConfig
from components.execution.orders import OrdersConfig
from tests.execution_harness import Desk

BAR = st.tuples(
    st.floats(-0.04, 0.04),  # gap from the previous close to the open
    st.floats(-0.03, 0.03),  # open -> close
    st.floats(0.0, 0.02),  # high above max(open, close)
    st.floats(0.0, 0.02),  # low below min(open, close)
    st.sampled_from([0.0, 80.0, 400.0, 1e6]),  # volume
)
INSIGHT = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["long", "flat", "short"]),
        st.sampled_from(["market", "market", "limit", "stop", "stop_limit"]),
        st.floats(-0.03, 0.03),  # limit offset from the close
        st.floats(-0.03, 0.03),  # stop offset from the close
        st.sampled_from(["gtc", "gtc", "day"]),
    ),
)
SETUP = st.fixed_dictionaries(
    {
        "spread": st.sampled_from([0.0, 0.0005, 0.01]),
        "fixed": st.sampled_from([0.0, 1.0]),
        "rate": st.sampled_from([0.0, 0.001]),
        "per_unit": st.sampled_from([0.0, 0.01]),
        "mvf": st.sampled_from([None, 0.25, 1.0]),
        "borrow": st.sampled_from([0.0, 0.05]),
        "sl": st.sampled_from([None, 0.01, 0.05]),
        "tp": st.sampled_from([None, 0.02]),
        "cash": st.sampled_from([1_000_000.0, 15_000.0]),
    }
)


def build(setup: dict) -> Desk:
    per_unit = setup["per_unit"]
    commission = CommissionConfig(
        fixed=setup["fixed"],
        rate=setup["rate"],
        per_unit=per_unit,
        min=0.5 if per_unit else None,
        max=3.0 if per_unit else None,
    )
    return Desk(
        cash=setup["cash"],
        commission=commission,
        spread=setup["spread"],
        max_volume_fraction=setup["mvf"],
        borrow_rate=setup["borrow"],
        orders=OrdersConfig(stop_loss=setup["sl"], take_profit=setup["tp"]),
    )


def identity_equity(desk: Desk, cash0: float) -> float:
    broker = desk.broker
    value = cash0 + sum(t.pnl for t in desk.trades()) - broker.borrow_paid
    for sym, lots in enumerate(broker.lots):
        for lot in lots:
            value += lot.qty * (broker.last_close[sym] - lot.price) - lot.fee
    return value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=SETUP, steps=st.lists(st.tuples(BAR, INSIGHT), min_size=1, max_size=40))
def test_broker_when_random_bars_and_orders_then_invariants_hold_at_every_bar(
    setup: dict, steps: list
) -> None:
    desk = build(setup)
    close = 100.0
    spread = setup["spread"]
    for (gap, move, up, down, volume), insight in steps:
        o = close * (1 + gap)
        c = o * (1 + move)
        high, low = max(o, c) * (1 + up), min(o, c) * (1 - down)
        n_fills = len(desk.fills())
        desk.bar(o, h=high, low=low, c=c, v=volume)
        close = c
        # no fill outside [low, high]; an entry's price is the market price plus the spread
        for fill in desk.fills()[n_fills:]:
            raw = fill.price
            if fill.reason == "entry" and spread:
                raw = fill.price / (1 + spread if fill.side == "buy" else 1 - spread)
            assert low * (1 - 1e-12) <= raw <= high * (1 + 1e-12), (fill, low, high)
        # the equity identity, at every bar
        assert desk.broker.equity() == pytest.approx(identity_equity(desk, setup["cash"]), rel=1e-9)
        if insight is not None:
            view, kind, limit_off, stop_off, tif = insight
            desk.view(
                view,
                order_type=kind,
                limit=close * (1 + limit_off) if kind in ("limit", "stop_limit") else None,
                stop=close * (1 + stop_off) if kind in ("stop", "stop_limit") else None,
                tif=tif,
            )
    # every order: fills + recorded cancellation + still working == its quantity
    filled: dict[int, int] = defaultdict(int)
    for fill in desk.fills():
        if fill.reason not in ("stop_loss", "take_profit"):
            filled[fill.signal_seq] += fill.quantity
    cancelled: dict[int, int] = defaultdict(int)
    for denial in desk.rows["denials"]:
        cancelled[denial.signal_seq] += denial.quantity
    working = {o.signal_seq: o.remaining for orders in desk.broker.pending.values() for o in orders}
    for signal in desk.rows["signals"]:
        total = filled[signal.seq] + cancelled[signal.seq] + working.get(signal.seq, 0)
        assert total == signal.quantity, (signal, filled[signal.seq], cancelled[signal.seq])
    assert math.isfinite(desk.broker.cash)
