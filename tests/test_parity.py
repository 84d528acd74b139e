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
