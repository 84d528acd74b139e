"""The kill switch with real orders (issue 10, item 5): halt, reduce_only and flatten while
brackets and working orders are at the broker; and what the run's outputs say about it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.execution.kill_switch import KillState, KillSwitchConfig
from components.execution.orders import OrdersConfig
from components.strategies.base import LONG
from tests.execution_harness import Desk
from tests.helpers import make_market_db, results_rows, run_in_process, synthetic_bars

HOUR = 3_600_000_000

BRACKETS = OrdersConfig(stop_loss=0.02, take_profit=0.04)


def two_symbol_desk(on_breach: str) -> Desk:
    """AAA long 100 with brackets 98 / 104 (the day's one allowed order); BBB's entry trips."""
    desk = Desk(
        symbols=("AAA", "BBB"),
        orders=BRACKETS,
        kill_switch=KillSwitchConfig(max_daily_trades=1, on_breach=on_breach),
        step=HOUR,
    )
    desk.bar(100.0, sym=0)
    desk.view(LONG, sym=0)
    desk.bar(100.0, h=100.5, low=99.5, sym=0)
    desk.bar(50.0, sym=1)
    desk.view(LONG, sym=1)  # the second order of this trading day trips the switch
    return desk


def test_halt_when_tripped_with_working_brackets_then_brackets_cancelled_and_recorded() -> None:
    # Arrange / Act
    desk = two_symbol_desk("halt")
    # Assert
    assert desk.ks.state is KillState.HALTED
    cancelled = [d for d in desk.rows["denials"] if d.code == "CANCELLED_BY_HALT"]
    assert [(d.symbol, d.side, d.quantity) for d in cancelled] == [("AAA", "sell", 100)]
    assert desk.broker.working_orders(0) == [] and desk.broker.bracketed == set()
    desk.bar(97.0, h=97.5, low=90.0, sym=0)  # would have hit the stop
    assert desk.trades() == [] and desk.broker.position_of(0) == 100


def test_reduce_only_when_tripped_with_working_brackets_then_protective_exits_keep_working() -> (
    None
):
    desk = two_symbol_desk("reduce_only")
    assert desk.ks.state is KillState.REDUCE_ONLY
    assert [d.code for d in desk.rows["denials"]] == ["MAX_DAILY_TRADES"]
    assert len(desk.broker.working_orders(0)) == 2  # stop and take profit still working
    desk.bar(99.0, h=99.5, low=97.0, sym=0)
    (trade,) = desk.trades()
    assert (trade.symbol, trade.exit_price, trade.exit_reason) == ("AAA", 98.0, "stop_loss")
    desk.view(LONG, sym=0)  # a new entry does not reduce anything
    assert desk.rows["denials"][-1].code == "REDUCE_ONLY"


def test_flatten_when_tripped_then_every_position_closes_at_the_next_open_then_halted() -> None:
    desk = two_symbol_desk("flatten")
    assert desk.ks.state is KillState.HALTED and desk.ks.describe()["mode"] == "flatten"
    assert [d.code for d in desk.rows["denials"]] == ["CANCELLED_BY_HALT", "MAX_DAILY_TRADES"]
    desk.bar(101.0, h=101.5, low=90.0, sym=0)  # closes at the open; the stop is gone
    (trade,) = desk.trades()
    assert (trade.symbol, trade.exit_price, trade.exit_reason) == ("AAA", 101.0, "flatten")
    assert desk.broker.held == set() and desk.broker.pending == {}
    desk.view(LONG, sym=0)
    assert desk.rows["denials"][-1].code == "HALTED"


def test_flatten_when_volume_capped_then_the_flatten_order_works_on_through_the_halt() -> None:
    desk = Desk(
        symbols=("AAA", "BBB"),
        max_volume_fraction=0.5,
        kill_switch=KillSwitchConfig(max_daily_trades=1, on_breach="flatten"),
        step=HOUR,
    )
    desk.bar(100.0, sym=0)
    desk.view(LONG, sym=0)
    desk.bar(100.0, v=1000.0, sym=0)
    desk.bar(50.0, sym=1)
    desk.view(LONG, sym=1)  # trips: flatten AAA
    desk.bar(100.0, v=100.0, sym=0)  # 50 units of volume per bar
    desk.bar(100.0, v=100.0, sym=0)
    assert [(t.size, t.exit_reason) for t in desk.trades()] == [(50, "flatten"), (50, "flatten")]
    assert [f.remaining for f in desk.fills()[1:]] == [50, 0]
    assert desk.broker.position_of(0) == 0 and desk.broker.pending == {}


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ks_exec") / "market.duckdb"
    return make_market_db(path, synthetic_bars(n_symbols=3, n_steps=1500, seed=7))


def test_flatten_when_run_end_to_end_then_summary_and_report_say_flatten(
    market_db: Path, tmp_path: Path
) -> None:
    # Act
    code, summary = run_in_process(
        tmp_path / "run",
        [
            f"db.path={market_db}",
            "strategy.fast=3",
            "strategy.slow=8",
            "execution.kill_switch.max_drawdown_pct=0.0001",
            "execution.kill_switch.on_breach=flatten",
            "orders.stop_loss=0.01",
        ],
    )
    # Assert
    assert code == 0 and summary["status"] == "halted"
    assert summary["kill_switch"]["mode"] == "flatten" and summary["open_positions"] == []
    trades = results_rows(tmp_path / "run", "trades")
    flattened = [t for t in trades if t[-1] == "flatten"]
    events = results_rows(tmp_path / "run", "kill_switch_events")
    assert flattened and all(t[4] > events[0][0] for t in flattened)
    assert all(t[4] == flattened[0][4] for t in flattened)  # all at the same (next) open
    fills = results_rows(tmp_path / "run", "fills")
    assert {f[-1] for f in fills if f[1] > events[0][0]} == {"flatten"}
    text = (tmp_path / "run" / "summary.md").read_text()
    assert "mode flatten" in text
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["kill_switch"]["mode"] == (
        "flatten"
    )
