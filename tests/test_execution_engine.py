"""The engine only runs the clock (issue 10): the broker comes from the registry, the sizing
policy decides quantities, and a strategy that reads no analytics causes no analytics query."""

from __future__ import annotations

from pathlib import Path

import pytest

from components import registry
from components.execution.broker import SimulatedBroker, SimulatedBrokerFactory
from components.execution.sizing import FixedUnits, PercentEquity, TargetWeight
from components.strategies.base import FLAT, LONG, SHORT, Insight
from tests.helpers import (
    compose_config,
    make_market_db,
    results_rows,
    run_in_process,
    synthetic_bars,
    synthetic_snapshots,
)


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bars = synthetic_bars(n_symbols=3, n_steps=400, seed=4)
    return make_market_db(
        tmp_path_factory.mktemp("engine") / "m.duckdb", bars, synthetic_snapshots(bars, "15min")
    )


@pytest.mark.parametrize("provider", ["direct", "cached"])
def test_analytics_when_strategy_reads_no_snapshots_then_zero_queries_issue_14(
    market_db: Path, tmp_path: Path, provider: str
) -> None:
    """direct: no query per bar; cached: the provider is not even opened (a sweep job of
    sma_cross skips its table check and snapshot-time query)."""
    # Act
    code, summary = run_in_process(
        tmp_path / "run", [f"db.path={market_db}", "strategy=sma_cross", f"analytics={provider}"]
    )
    # Assert
    assert code == 0 and summary["n_trades"] > 0
    assert summary["metrics"]["analytics_queries"] == 0
    assert summary["metrics"]["cache_hits"] + summary["metrics"]["cache_misses"] == 0


def test_analytics_when_strategy_reads_snapshots_then_direct_queries_once_per_step(
    market_db: Path, tmp_path: Path
) -> None:
    code, summary = run_in_process(
        tmp_path / "run",
        [f"db.path={market_db}", "strategy=momentum_rotation", "analytics=direct"],
    )
    assert code == 0
    assert summary["metrics"]["analytics_queries"] == summary["metrics"]["clock_steps"]


def test_broker_when_built_through_the_registry_then_a_factory_without_io() -> None:
    cfg = compose_config(["broker.commission.rate=0.001"])
    factory = registry.build("broker", cfg.broker)
    assert isinstance(factory, SimulatedBrokerFactory)
    broker = factory(("AAA", "BBB"), lambda table, row: None, iter(range(1, 99)).__next__)
    assert isinstance(broker, SimulatedBroker) and broker.commission.rate == 0.001
    assert broker.position_of(1) == 0 and broker.equity() == 1_000_000.0


@pytest.mark.parametrize(
    ("option", "cls"),
    [
        ("fixed_units", FixedUnits),
        ("percent_equity", PercentEquity),
        ("target_weight", TargetWeight),
    ],
)
def test_sizing_when_option_selected_then_registry_builds_it(option: str, cls: type) -> None:
    cfg = compose_config([f"sizing={option}"])
    assert isinstance(registry.build("sizing", cfg.sizing), cls)


def ins(view: str, **fields: object) -> Insight:
    return Insight(0, 0, view, "test", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("view", "held", "legs"),
    [
        (LONG, 0, [("buy", 100, "open", None)]),
        (LONG, 100, []),
        (LONG, -100, [("buy", 100, "reverse", None), ("buy", 100, "open", None)]),
        (SHORT, 100, [("sell", 100, "reverse", None), ("sell", 100, "open", None)]),
        (SHORT, -100, []),
        (FLAT, 100, [("sell", 100, "close", None)]),
        (FLAT, -40, [("buy", 40, "close", None)]),
        (FLAT, 0, []),
    ],
)
def test_fixed_units_when_view_and_position_then_legs_exit_first(
    view: str, held: int, legs: list
) -> None:
    assert FixedUnits(100).legs(ins(view), held, 10.0, 1e6) == legs


def test_percent_equity_when_entry_then_estimate_at_close_and_fraction_for_the_fill() -> None:
    (leg,) = PercentEquity(0.5).legs(ins(LONG), 0, 30.0, 1000.0)
    assert leg == ("buy", 16, "open", 0.5)


def test_target_weight_when_rebalanced_then_whole_units_toward_zero() -> None:
    policy = TargetWeight(1.0)
    assert policy.legs(ins(LONG, weight=0.25), 0, 30.0, 1000.0) == [("buy", 8, "open", None)]
    assert policy.legs(ins(LONG, weight=0.1), 8, 30.0, 1000.0) == [("sell", 5, "close", None)]
    assert policy.legs(ins(SHORT, weight=-0.1), 8, 30.0, 1000.0) == [
        ("sell", 8, "reverse", None),
        ("sell", 3, "open", None),
    ]
    assert policy.legs(ins(FLAT), 8, 30.0, 1000.0) == [("sell", 8, "close", None)]


def test_percent_equity_when_run_then_quantity_computed_at_the_fill_from_the_fill_price(
    market_db: Path, tmp_path: Path
) -> None:
    code, _summary = run_in_process(
        tmp_path / "run",
        [f"db.path={market_db}", "sizing=percent_equity", "sizing.fraction=0.2", "symbols=[SYM0]"],
    )
    assert code == 0
    fills = results_rows(tmp_path / "run", "fills")
    entries = [f for f in fills if f[-1] == "entry"]
    assert entries
    equity = {row[0]: row[2] for row in results_rows(tmp_path / "run", "equity")}
    stamps = sorted(equity)
    for fill in entries:
        previous = equity[stamps[stamps.index(fill[1]) - 1]]  # marked at the previous close
        assert fill[4] == int(0.2 * previous / fill[5])
