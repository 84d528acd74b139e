"""Contract suite every MarketProvider passes: causal order, one clock, same slices (STYLE P10)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.data.schemas import OhlcvBars
from components.errors import DataValidationError
from components.market.base import BarChunk, Universe, chunk_satisfies_contract, validate_chunk
from components.market.providers import ChunkedMarketProvider, DirectMarketProvider
from tests.helpers import make_market_db, read_shared_csv, synthetic_bars

DATASETS = {
    "wiki": lambda: read_shared_csv(
        "wiki_stocks_daily_2000_2013.csv"
    ),  # FB starts 2012: unequal histories
    "xrpeth_holes": lambda: read_shared_csv(
        "xrpeth_1min_2019_10.csv"
    ),  # 675 holes in a 1-min series
    "synthetic": lambda: synthetic_bars(n_symbols=4, n_steps=400),
}


@pytest.fixture(scope="module", params=sorted(DATASETS))
def market(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pd.DataFrame]:
    bars = DATASETS[request.param]()
    path = make_market_db(tmp_path_factory.mktemp(request.param) / "m.duckdb", bars)
    return path, bars


def serve(path: Path, provider, universe: Universe) -> list[BarChunk]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        provider.open(con, universe)
        return list(provider.chunks())
    finally:
        con.close()


def universe_of(path: Path, start: str | None = None, end: str | None = None) -> Universe:
    con = duckdb.connect(str(path), read_only=True)
    symbols = tuple(
        s for (s,) in con.execute("SELECT DISTINCT symbol FROM bars ORDER BY 1").fetchall()
    )
    start_us = pd.Timestamp(start, tz="UTC").value // 1000 if start else None
    end_us = pd.Timestamp(end, tz="UTC").value // 1000 if end else None
    (steps,) = con.execute(
        "SELECT count(DISTINCT ts) FROM bars WHERE ($s IS NULL OR ts >= make_timestamptz($s)) "
        "AND ($e IS NULL OR ts < make_timestamptz($e))",
        {"s": start_us, "e": end_us},
    ).fetchone()
    con.close()
    return Universe(symbols, start_us, end_us, int(steps))


def concat(chunks: list[BarChunk], symbols: tuple[str, ...]) -> pd.DataFrame:
    return pd.concat([c.to_frame(symbols) for c in chunks], ignore_index=True)


def expected_frame(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.sort_values(["ts", "symbol"]).reset_index(drop=True)[
        ["symbol", "ts", "open", "high", "low", "close", "volume"]
    ]


PROVIDERS = {
    "direct": lambda: DirectMarketProvider(validate=True),
    **{
        f"chunked_{n}": (lambda n=n: ChunkedMarketProvider(validate=True, chunk_size=n))
        for n in (1, 7, 1000, 10**7)
    },
    # pages fetched ahead on a thread (market.prefetch): the same chunks, in the same order
    **{
        f"chunked_{n}_prefetch_{k}": (
            lambda n=n, k=k: ChunkedMarketProvider(validate=True, chunk_size=n, prefetch=k)
        )
        for n, k in ((7, 1), (1000, 2))
    },
}


SLOW_PROVIDERS = ("direct", "chunked_1")  # one query per step, ~4 ms each


def _check_serves_every_bar(
    name: str, path: Path, bars: pd.DataFrame, window_steps: int | None
) -> None:
    universe = universe_of(path)
    if window_steps is not None and universe.n_steps > window_steps:
        start = bars["ts"].drop_duplicates().sort_values().iloc[-window_steps]
        bars = bars[bars["ts"] >= start]
        universe = universe_of(path, start=start.isoformat())
    chunks = serve(path, PROVIDERS[name](), universe)
    got = concat(chunks, universe.symbols)
    pd.testing.assert_frame_equal(got, expected_frame(bars), check_dtype=False)
    OhlcvBars.validate(got)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_provider_when_served_then_every_bar_once_in_ts_then_symbol_order(
    name: str, market
) -> None:
    path, bars = market
    _check_serves_every_bar(name, path, bars, 300 if name in SLOW_PROVIDERS else None)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_PROVIDERS)
def test_provider_when_one_query_per_step_over_whole_history_then_every_bar_once(
    name: str, market
) -> None:
    path, bars = market
    _check_serves_every_bar(name, path, bars, None)


@pytest.mark.parametrize("name", sorted(PROVIDERS))
def test_provider_when_served_then_chunks_hold_whole_clock_steps_strictly_increasing(
    name: str, market
) -> None:
    path, bars = market
    universe = universe_of(
        path, start=bars["ts"].drop_duplicates().sort_values().iloc[-300].isoformat()
    )
    chunks = serve(path, PROVIDERS[name](), universe)
    steps = np.concatenate([c.step_ts for c in chunks])
    assert np.all(np.diff(steps) > 0)  # one clock, strictly increasing across chunk boundaries
    assert len(steps) == universe.n_steps
    for c in chunks:
        for k in range(c.n_steps):
            lo, hi = c.bounds[k], c.bounds[k + 1]
            assert np.all(c.ts[lo:hi] == c.step_ts[k])
            assert np.all(
                np.diff(c.sym[lo:hi]) > 0
            )  # symbols sorted; absent symbols simply missing


def test_chunked_when_chunk_size_n_then_issues_ceil_steps_over_n_queries(market) -> None:
    path, _ = market
    universe = universe_of(path)
    for n in (1, 7, 1000, 10**7):
        if n == 1 and universe.n_steps > 500:  # covered by the slow whole-history test
            continue
        provider = ChunkedMarketProvider(validate=True, chunk_size=n)
        chunks = serve(path, provider, universe)
        assert provider.queries == -(-universe.n_steps // n)
        assert provider.index_queries == 1
        assert all(c.n_steps == n for c in chunks[:-1])


def test_chunked_when_window_given_then_serves_only_that_window(tmp_path: Path) -> None:
    bars = synthetic_bars(n_symbols=3, n_steps=300)
    path = make_market_db(tmp_path / "m.duckdb", bars)
    universe = universe_of(path, start="2024-03-08 01:00", end="2024-03-08 02:00")
    got = concat(serve(path, ChunkedMarketProvider(True, 13), universe), universe.symbols)
    window = bars[
        (bars.ts >= pd.Timestamp("2024-03-08 01:00", tz="UTC"))
        & (bars.ts < pd.Timestamp("2024-03-08 02:00", tz="UTC"))
    ]
    pd.testing.assert_frame_equal(got, expected_frame(window), check_dtype=False)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunk_size=st.integers(min_value=1, max_value=450))
def test_chunked_when_random_chunk_size_then_same_bars_as_direct(
    chunk_size: int, tmp_path_factory
) -> None:
    path = _small_db(tmp_path_factory)
    universe = universe_of(path)
    if "direct" not in _SMALL:
        _SMALL["direct"] = concat(
            serve(path, DirectMarketProvider(True), universe), universe.symbols
        )
    direct = _SMALL["direct"]
    chunked = concat(
        serve(path, ChunkedMarketProvider(True, chunk_size), universe), universe.symbols
    )
    pd.testing.assert_frame_equal(chunked, direct)


_SMALL: dict[str, object] = {}


def _small_db(factory: pytest.TempPathFactory) -> Path:
    if "db" not in _SMALL:
        _SMALL["db"] = make_market_db(
            factory.mktemp("small") / "m.duckdb", synthetic_bars(n_symbols=3, n_steps=150)
        )
    return _SMALL["db"]


# -- the numpy fast path and pandera agree ------------------------------------------------------

CORRUPTIONS = {
    "nan_close": lambda f: f["close"].__setitem__(3, np.nan),
    "inf_open": lambda f: f["open"].__setitem__(2, np.inf),
    "zero_low": lambda f: f["low"].__setitem__(1, 0.0),
    "negative_volume": lambda f: f["volume"].__setitem__(4, -1.0),
    "high_below_close": lambda f: f["high"].__setitem__(5, f["close"][5] * 0.5),
    "low_above_open": lambda f: f["low"].__setitem__(6, f["open"][6] * 2.0),
}


def _chunk(bars: pd.DataFrame, symbols: tuple[str, ...]) -> BarChunk:
    from components.market.base import chunk_from_columns

    bars = bars.sort_values(["ts", "symbol"])
    index = {s: i for i, s in enumerate(symbols)}
    return chunk_from_columns(
        {
            "ts_us": (bars["ts"].astype("int64") // 1000).to_numpy()
            if bars["ts"].dtype.unit == "ns"
            else bars["ts"].astype("int64").to_numpy(),
            "sym": bars["symbol"].map(index).to_numpy(),
            **{c: bars[c].to_numpy().copy() for c in ("open", "high", "low", "close", "volume")},
        }
    )


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_validate_chunk_when_corrupt_then_pandera_report_raised(corruption: str) -> None:
    bars = synthetic_bars(n_symbols=2, n_steps=20, holes=False)
    symbols = ("SYM0", "SYM1")
    chunk = _chunk(bars, symbols)
    columns = {
        "close": chunk.close,
        "open": chunk.open,
        "low": chunk.low,
        "volume": chunk.volume,
        "high": chunk.high,
    }
    CORRUPTIONS[corruption](columns)
    assert not chunk_satisfies_contract(chunk, 2)
    with pytest.raises(DataValidationError, match="OhlcvBars"):
        validate_chunk(chunk, Universe(symbols), "test chunk")


def test_validate_chunk_when_clean_then_fast_path_accepts() -> None:
    bars = synthetic_bars(n_symbols=3, n_steps=50)
    chunk = _chunk(bars, ("SYM0", "SYM1", "SYM2"))
    assert chunk_satisfies_contract(chunk, 3)
    OhlcvBars.validate(chunk.to_frame(("SYM0", "SYM1", "SYM2")))


# -- the providers' queries carry no ORDER BY: rows are put in (ts, symbol) order in numpy -------


def _shuffled_market_db(path: Path, bars: pd.DataFrame, seed: int) -> Path:
    """A market DB whose rows are stored in a random order (not as our producers write them)."""
    shuffled = bars.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    con = duckdb.connect(str(path))
    try:
        from components.data.market_db import bump_content_version, ensure_schema

        ensure_schema(con)
        con.register("_bars", shuffled[["symbol", "ts", "open", "high", "low", "close", "volume"]])
        con.execute("INSERT INTO bars SELECT * FROM _bars")  # insertion order kept: shuffled
        bump_content_version(con)
    finally:
        con.close()
    return path


@pytest.mark.parametrize("name", ["direct", "chunked_7", "chunked_1000", "chunked_7_prefetch_1"])
def test_provider_when_rows_stored_out_of_order_then_same_chunks_as_sorted_db(
    name: str, tmp_path: Path
) -> None:
    bars = synthetic_bars(n_symbols=4, n_steps=120)
    sorted_db = make_market_db(tmp_path / "sorted.duckdb", bars)
    shuffled_db = _shuffled_market_db(tmp_path / "shuffled.duckdb", bars, seed=11)
    universe = universe_of(sorted_db)
    want = serve(sorted_db, PROVIDERS[name](), universe)
    got = serve(shuffled_db, PROVIDERS[name](), universe)
    assert [len(c) for c in got] == [len(c) for c in want]
    for a, b in zip(got, want, strict=True):
        for column in ("ts", "sym", "open", "high", "low", "close", "volume", "step_ts", "bounds"):
            np.testing.assert_array_equal(getattr(a, column), getattr(b, column))
    pd.testing.assert_frame_equal(
        concat(got, universe.symbols), expected_frame(bars), check_dtype=False
    )


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 3)), min_size=0, max_size=40, unique=True
    ),
    data=st.data(),
)
def test_in_step_order_when_any_permutation_then_rows_sorted_by_ts_then_sym(keys, data) -> None:
    from components.market.base import in_step_order

    rows = data.draw(st.permutations(keys))
    cols = {
        "ts_us": np.array([t for t, _ in rows], dtype=np.int64),
        "sym": np.array([s for _, s in rows], dtype=np.int64),
        "close": np.arange(len(rows), dtype=np.float64),  # carried along with its row
    }
    got = in_step_order(cols)
    assert list(zip(got["ts_us"].tolist(), got["sym"].tolist(), strict=True)) == sorted(rows)
    by_key = {(t, s): float(i) for i, (t, s) in enumerate(rows)}
    assert got["close"].tolist() == [by_key[k] for k in sorted(rows)]
