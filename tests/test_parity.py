"""Behavioural parity: performance settings never change trading output (DESIGN section 6)."""

from __future__ import annotations

import itertools
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.execution.records import DIGEST_TABLES
from components.execution.write_buffer import digest_of_results
from tests.helpers import (
    make_market_db,
    results_rows,
    run_in_process,
    synthetic_bars,
    synthetic_snapshots,
)

MOMENTUM = ["strategy=momentum_rotation", "strategy.top_n=2"]
SMA_WITH_DENIALS = [
    "strategy=sma_cross",
    "strategy.fast=3",
    "strategy.slow=8",
    "execution.kill_switch.max_orders_per_window=4",
    "execution.kill_switch.window_minutes=30",
    "execution.kill_switch.on_breach=reduce_only",
]

PERFORMANCE = [["market=direct"]] + [
    ["market=chunked", f"market.chunk_size={n}"] for n in (1, 7, 1000, 100000)
]
MATRIX = [
    (market, analytics, batch)
    for market, analytics, batch in itertools.product(
        PERFORMANCE, ("direct", "cached"), (1, 500, 100000)
    )
]


@pytest.fixture(scope="module")
def market_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bars = synthetic_bars(n_symbols=4, n_steps=160, seed=11)
    return make_market_db(
        tmp_path_factory.mktemp("parity") / "m.duckdb",
        bars,
        synthetic_snapshots(bars, every="15min"),
    )


def run(tmp_path: Path, db: Path, overrides: list[str], name: str) -> dict:
    code, summary = run_in_process(tmp_path / name, [f"db.path={db}", *overrides])
    assert code == 0, summary
    return summary


def test_parity_when_every_performance_setting_combined_then_digest_identical(
    market_db: Path, tmp_path: Path
) -> None:
    """market.kind x chunk_size {1,7,1000,100000} x analytics.kind x buffer.batch_size {1,500,100000}."""
    digests = {}
    for i, (market, analytics, batch) in enumerate(MATRIX):
        summary = run(
            tmp_path,
            market_db,
            [*MOMENTUM, *market, f"analytics={analytics}", f"buffer.batch_size={batch}"],
            f"job{i}",
        )
        digests[(" ".join(market), analytics, batch)] = summary["digest"]
        assert (
            digest_of_results(
                duckdb.connect(str(tmp_path / f"job{i}" / "results.duckdb"), read_only=True)
            )
            == summary["digest"]
        ), "persisted rows differ from emitted rows"
    assert len(set(digests.values())) == 1, digests
    assert summary["n_trades"] > 0 and summary["record_counts"]["insights"] > 0


def test_parity_when_denials_recorded_then_digest_identical_across_providers(
    market_db: Path, tmp_path: Path
) -> None:
    combos = [
        ["market=direct", "analytics=direct", "buffer.batch_size=1"],
        ["market=chunked", "market.chunk_size=7", "analytics=cached", "buffer.batch_size=500"],
        ["market=chunked", "market.chunk_size=100000", "analytics=cached", "buffer=memory"],
    ]
    summaries = [
        run(tmp_path, market_db, [*SMA_WITH_DENIALS, *c], f"d{i}") for i, c in enumerate(combos)
    ]
    assert summaries[0]["record_counts"]["denials"] > 0
    assert len({s["digest"] for s in summaries}) == 1


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chunk_size=st.integers(min_value=1, max_value=300),
    batch_size=st.integers(min_value=1, max_value=2000),
)
def test_parity_when_random_chunk_and_batch_sizes_then_digest_identical(
    market_db: Path, tmp_path_factory, chunk_size: int, batch_size: int
) -> None:
    base = tmp_path_factory.mktemp("h")
    reference = run(
        base,
        market_db,
        [*MOMENTUM, "market=chunked", "market.chunk_size=100000", "buffer=memory"],
        "ref",
    )
    got = run(
        base,
        market_db,
        [
            *MOMENTUM,
            "market=chunked",
            f"market.chunk_size={chunk_size}",
            f"buffer.batch_size={batch_size}",
        ],
        "job",
    )
    assert got["digest"] == reference["digest"]


@pytest.mark.parametrize("strategy", [MOMENTUM, SMA_WITH_DENIALS])
def test_prefix_when_run_ends_earlier_then_records_are_a_prefix_of_the_longer_run(
    strategy: list[str], market_db: Path, tmp_path: Path
) -> None:
    """A lookahead canary: a run over [t0, t1] emits exactly the first records of a run over [t0, t2]."""
    t1 = "2024-03-08T01:47:00+00:00"
    short = run(tmp_path, market_db, [*strategy, f"end='{t1}'"], "short")
    long = run(tmp_path, market_db, [*strategy], "long")
    assert short["metrics"]["clock_steps"] < long["metrics"]["clock_steps"]
    for table in DIGEST_TABLES:
        if table == "trades":
            continue  # a trade is recorded at its exit, so prefix-ness holds through fills
        a, b = results_rows(tmp_path / "short", table), results_rows(tmp_path / "long", table)
        assert a == b[: len(a)], table
        assert all(pd.Timestamp(r[1]) <= pd.Timestamp(t1) for r in a)
    trades_short = results_rows(tmp_path / "short", "trades")
    assert trades_short == results_rows(tmp_path / "long", "trades")[: len(trades_short)]


EXECUTION = [
    "strategy=sma_cross",
    "strategy.fast=3",
    "strategy.slow=8",
    "strategy.short=true",
    "broker.commission.fixed=1.0",
    "broker.commission.rate=0.001",
    "broker.spread=0.0005",
    "broker.max_volume_fraction=0.2",
    "broker.borrow_rate=0.05",
    "orders.stop_loss=0.002",
    "orders.take_profit=0.004",
]
EXECUTION_MATRIX = [
    (market, analytics, batch)
    for market, analytics, batch in itertools.product(
        [["market=direct"]] + [["market=chunked", f"market.chunk_size={n}"] for n in (1, 7, 1000)],
        ("direct", "cached"),
        ("buffer.batch_size=1", "buffer.batch_size=100000", "buffer=memory"),
    )
]


EXECUTION_QUICK = [
    (["market=direct"], "direct", "buffer.batch_size=1"),
    (["market=chunked", "market.chunk_size=7"], "cached", "buffer.batch_size=100000"),
    (["market=chunked", "market.chunk_size=1"], "cached", "buffer=memory"),
]


@pytest.mark.slow
def test_parity_when_costs_shorts_brackets_and_partial_fills_on_then_one_digest_per_matrix(
    market_db: Path, tmp_path: Path
) -> None:
    """Issue 10: every performance key (chunk sizes incl. 1 and 7, direct/chunked, cached/direct,
    batch sizes, persistence) with costs, shorts, brackets and partial fills gives one digest."""
    _assert_one_execution_digest(market_db, tmp_path, EXECUTION_MATRIX)


def test_parity_when_costs_shorts_brackets_on_then_one_digest_across_providers(
    market_db: Path, tmp_path: Path
) -> None:
    """The fast subset of the matrix above (the whole matrix runs with the slow tests)."""
    _assert_one_execution_digest(market_db, tmp_path, EXECUTION_QUICK)


def _assert_one_execution_digest(market_db: Path, tmp_path: Path, matrix: list) -> None:
    # Act
    summaries = {}
    for i, (market, analytics, batch) in enumerate(matrix):
        summaries[(" ".join(market), analytics, batch)] = run(
            tmp_path, market_db, [*EXECUTION, *market, f"analytics={analytics}", batch], f"x{i}"
        )
    # Assert
    digests = {key: s["digest"] for key, s in summaries.items()}
    assert len(set(digests.values())) == 1, digests
    one = summaries[("market=direct", "direct", "buffer.batch_size=1")]
    assert (
        digest_of_results(duckdb.connect(str(tmp_path / "x0" / "results.duckdb"), read_only=True))
        == one["digest"]
    )
    reasons = {row[-1] for row in results_rows(tmp_path / "x0", "trades")}
    assert {"reverse", "stop_loss", "take_profit"} <= reasons  # the features were exercised
    assert one["total_fees"] > 0 and one["total_borrow"] > 0
    partial = [f for f in results_rows(tmp_path / "x0", "fills") if f[-2] > 0]
    assert partial, "no partial fill: broker.max_volume_fraction was not exercised"
    assert len({(s["total_fees"], s["final_equity"]) for s in summaries.values()}) == 1
