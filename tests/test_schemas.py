"""pandera contracts: every defect in the catalogue is caught and the report names its row."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.data.schemas import AnalyticsSnapshot, OhlcvBars, validate_or_raise
from components.errors import DataValidationError

BAD_ROW = 2  # index of the corrupted row; reported as "row 4" (header = line 1, data from line 2)


def valid_bars(n: int = 5) -> pd.DataFrame:
    """Return ``n`` valid one-minute bars of one symbol."""
    return pd.DataFrame(
        {
            "symbol": ["AAA"] * n,
            "ts": pd.date_range("2024-01-02 09:30", periods=n, freq="min", tz="UTC"),
            "open": [10.0] * n,
            "high": [11.0] * n,
            "low": [9.0] * n,
            "close": [10.5] * n,
            "volume": [100.0] * n,
        }
    )


def _set(column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        if isinstance(value, str) and df[column].dtype != object:
            df[column] = df[column].astype(object)
        df.loc[BAD_ROW, column] = value
        return df

    return mutate


def _text_ts(values: dict[int, str]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(df: pd.DataFrame) -> pd.DataFrame:
        text = df["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00").astype(object)
        for row, value in values.items():
            text[row] = value
        df["ts"] = text
        return df

    return mutate


def _duplicate(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[BAD_ROW, "ts"] = df.loc[BAD_ROW - 1, "ts"]
    return df


def _unsorted(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[BAD_ROW, "ts"] = df.loc[0, "ts"] - pd.Timedelta(hours=1)
    return df


# (case, mutation, expected report line for row 4)
ROW_DEFECTS = [
    ("nan", _set("open", np.nan), "column open: check not_nullable: value nan"),
    (
        "plus_inf",
        _set("high", np.inf),
        "column high: check value must be finite (not inf or NaN): value inf",
    ),
    ("minus_inf", _set("low", -np.inf), "column low: check greater_than(0): value -inf"),
    ("zero_price", _set("close", 0.0), "column close: check greater_than(0): value 0.0"),
    ("negative_price", _set("open", -1.0), "column open: check greater_than(0): value -1.0"),
    (
        "high_below_low",
        _set("high", 8.0),
        "column open,high,low,close: check high must be >= max(open, close, low): value open=10.0, high=8.0, low=9.0, close=10.5",
    ),
    (
        "high_below_open",
        _set("open", 11.5),
        "column open,high,low,close: check high must be >= max(open, close, low): value open=11.5, high=11.0, low=9.0, close=10.5",
    ),
    (
        "high_below_close",
        _set("close", 11.5),
        "column open,high,low,close: check high must be >= max(open, close, low): value open=10.0, high=11.0, low=9.0, close=11.5",
    ),
    (
        "low_above_open",
        _set("open", 8.5),
        "column open,low,close: check low must be <= min(open, close): value open=8.5, low=9.0, close=10.5",
    ),
    (
        "low_above_close",
        _set("close", 8.5),
        "column open,low,close: check low must be <= min(open, close): value open=10.0, low=9.0, close=8.5",
    ),
    (
        "negative_volume",
        _set("volume", -5.0),
        "column volume: check greater_than_or_equal_to(0): value -5.0",
    ),
    (
        "duplicate_symbol_ts",
        _duplicate,
        "column symbol,ts: check (symbol, ts) must be unique: value symbol=AAA, ts=2024-01-02T09:31:00+00:00",
    ),
    (
        "unsorted_ts",
        _unsorted,
        "column symbol,ts: check ts must strictly increase within each symbol: value symbol=AAA, ts=2024-01-02T08:30:00+00:00",
    ),
    (
        "unparsable_ts",
        _text_ts({BAD_ROW: "yesterday"}),
        "column ts: check coerce_dtype('datetime64[us, UTC]'): value 'yesterday'",
    ),
    (
        "text_in_number",
        _set("close", "ten"),
        "column close: check coerce_dtype('float64'): value 'ten'",
    ),
    (
        "mixed_time_zones",
        _text_ts({BAD_ROW: "2024-01-02T09:32:00"}),
        "column ts: check ts must parse as a timestamp, all with an offset or all without (one clock): value '2024-01-02T09:32:00'",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "line"), ROW_DEFECTS, ids=[c[0] for c in ROW_DEFECTS])
def test_ohlcv_bars_when_row_defect_then_report_names_the_row(
    case: str, mutate: Callable, line: str
) -> None:
    # Arrange
    df = mutate(valid_bars())
    # Act
    with pytest.raises(DataValidationError) as caught:
        validate_or_raise(OhlcvBars, df, "bars.csv")
    # Assert
    message = str(caught.value)
    assert message.startswith("bars.csv: ") and "nothing was written" in message
    assert f"  row {BAD_ROW + 2}: {line}" in caught.value.report.splitlines(), caught.value.report
    assert caught.value.n_failures >= 1


@pytest.mark.parametrize(
    ("case", "mutate", "line"),
    [
        (
            "empty_input",
            lambda df: df.iloc[0:0],
            "  whole table: column OhlcvBars: check input has no rows: value False",
        ),
        (
            "missing_column",
            lambda df: df.drop(columns="volume"),
            "  whole table: column OhlcvBars: check column_in_dataframe: value 'volume'",
        ),
        (
            "extra_column",
            lambda df: df.assign(adj_close=1.0),
            "  whole table: column OhlcvBars: check column_in_schema: value 'adj_close'",
        ),
    ],
)
def test_ohlcv_bars_when_table_defect_then_report_names_it(
    case: str, mutate: Callable, line: str
) -> None:
    # Arrange
    df = mutate(valid_bars())
    # Act / Assert
    with pytest.raises(DataValidationError) as caught:
        validate_or_raise(OhlcvBars, df, "bars.csv")
    assert caught.value.report.splitlines() == [line]


def test_ohlcv_bars_when_valid_frame_then_returned_with_utc_microsecond_ts() -> None:
    # Arrange
    df = valid_bars()
    df["ts"] = df["ts"].dt.tz_convert("America/New_York")  # any zone is converted to UTC
    # Act
    out = validate_or_raise(OhlcvBars, df, "bars")
    # Assert
    assert str(out["ts"].dtype) == "datetime64[us, UTC]"
    assert out["ts"].iloc[0] == pd.Timestamp("2024-01-02 09:30", tz="UTC")


def test_ohlcv_bars_when_symbols_interleaved_then_order_checked_per_symbol() -> None:
    # Arrange: symbols interleaved as the market DB stores them; BBB goes back in time at index 5
    t = pd.date_range("2024-01-02", periods=3, freq="min", tz="UTC")
    df = valid_bars(6).assign(symbol=["AAA", "BBB"] * 3, ts=[t[0], t[0], t[1], t[2], t[2], t[1]])
    # Act
    with pytest.raises(DataValidationError) as caught:
        validate_or_raise(OhlcvBars, df, "bars")
    # Assert
    assert caught.value.report.splitlines() == [
        "  row 7: column symbol,ts: check ts must strictly increase within each symbol: value symbol=BBB, ts=2024-01-02T00:01:00+00:00"
    ]


def test_validate_or_raise_when_many_failures_then_first_20_and_total() -> None:
    # Arrange
    df = valid_bars(30)
    df.loc[:24, "volume"] = -1.0
    # Act
    with pytest.raises(
        DataValidationError,
        match=r"^bars: 25 invalid value\(s\) against OhlcvBars; nothing was written\.",
    ) as caught:
        validate_or_raise(OhlcvBars, df, "bars")
    # Assert
    lines = caught.value.report.splitlines()
    assert len(lines) == 21 and lines[-1] == "  ... and 5 more (25 failures in all)"
    assert lines[0] == "  row 2: column volume: check greater_than_or_equal_to(0): value -1.0"


@st.composite
def bar_frames(draw: st.DrawFn) -> pd.DataFrame:
    """Draw valid bars: a few symbols, strictly increasing ts, OHLC built to bound each other."""
    n_symbols = draw(st.integers(1, 4))
    n = draw(st.integers(1, 30))
    price = st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False)
    frames = []
    for k in range(n_symbols):
        steps = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n))
        a = np.array(draw(st.lists(price, min_size=n, max_size=n)))
        b = np.array(draw(st.lists(price, min_size=n, max_size=n)))
        wick = np.array(draw(st.lists(st.floats(0, 0.5), min_size=n, max_size=n)))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"S{k}",
                    "ts": pd.Timestamp("2020-01-01", tz="UTC")
                    + pd.to_timedelta(np.cumsum(steps), unit="s"),
                    "open": a,
                    "high": np.maximum(a, b) * (1 + wick),
                    "low": np.minimum(a, b) * (1 - wick / 2),
                    "close": b,
                    "volume": np.array(draw(st.lists(st.floats(0, 1e9), min_size=n, max_size=n))),
                }
            )
        )
    return pd.concat(frames).sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=bar_frames(), data=st.data())
def test_ohlcv_bars_when_random_valid_bars_then_pass_and_one_broken_bar_is_named(
    df: pd.DataFrame, data: st.DataObject
) -> None:
    # Act / Assert: valid input passes unchanged
    validate_or_raise(OhlcvBars, df.copy(), "bars")
    # Arrange: push one bar's high below its low
    row = data.draw(st.integers(0, len(df) - 1))
    broken = df.copy()
    broken.loc[row, "high"] = broken.loc[row, "low"] * 0.5
    # Act
    with pytest.raises(DataValidationError) as caught:
        validate_or_raise(OhlcvBars, broken, "bars")
    # Assert
    assert re.findall(r"row (\d+)", caught.value.report) == [str(row + 2)]


def valid_snapshots() -> pd.DataFrame:
    ts = pd.Timestamp("2024-01-02 23:59", tz="UTC")
    return pd.DataFrame(
        {
            "snapshot_ts": [ts, ts],
            "symbol": ["AAA", "BBB"],
            "trailing_return": [0.02, -0.01],
            "volatility": [0.001, 0.002],
            "return_rank": [1.0, 2.0],
        }
    )


def test_analytics_snapshot_when_valid_then_passes() -> None:
    assert len(validate_or_raise(AnalyticsSnapshot, valid_snapshots(), "snapshots")) == 2


@pytest.mark.parametrize(
    ("column", "value", "check"),
    [
        ("volatility", np.inf, "value must be finite (not inf or NaN)"),
        ("volatility", -0.1, "greater_than_or_equal_to(0)"),
        ("return_rank", 0.0, "greater_than_or_equal_to(1)"),
        ("trailing_return", np.nan, "not_nullable"),
        ("symbol", "AAA", "multiple_fields_uniqueness"),
    ],
)
def test_analytics_snapshot_when_bad_value_then_row_reported(
    column: str, value: object, check: str
) -> None:
    # Arrange
    df = valid_snapshots()
    df.loc[1, column] = value
    # Act / Assert
    with pytest.raises(DataValidationError) as caught:
        validate_or_raise(AnalyticsSnapshot, df, "snapshots")
    assert f"row 3: column {column}: check {check}" in caught.value.report


def test_ohlcv_bars_when_frame_changed_in_place_between_validations_then_rechecked() -> None:
    """The ts-order result shared by two checks must never be reused for a later validation."""
    # Arrange
    df = valid_bars()
    validate_or_raise(OhlcvBars, df, "bars")
    df.loc[BAD_ROW, "ts"] = df.loc[BAD_ROW - 1, "ts"]
    # Act / Assert
    with pytest.raises(DataValidationError, match=r"\(symbol, ts\) must be unique"):
        validate_or_raise(OhlcvBars, df, "bars")
