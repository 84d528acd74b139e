"""pandera contracts for the market DB (DESIGN section 4, STYLE P8).

``OhlcvBars`` guards every bar that enters the market DB or the runner loop; ``AnalyticsSnapshot``
guards every snapshot row. ``validate_or_raise`` runs a schema lazily and turns the failure cases
into one ``DataValidationError`` whose report lists every failing row.

The row checks work on numpy arrays rather than pandas reductions: validation must stay under
0.5 s per 1M bars (DESIGN section 8) without dropping any check.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors
from pandera.typing import Series

from components.errors import DataValidationError

TS_DTYPE = {"unit": "us", "tz": "UTC"}
BAR_COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume"]
SNAPSHOT_COLUMNS = ["snapshot_ts", "symbol", "trailing_return", "volatility", "return_rank"]

FINITE_ERROR = "value must be finite (not inf or NaN)"
HIGH_ERROR = "high must be >= max(open, close, low)"
LOW_ERROR = "low must be <= min(open, close)"
TS_ORDER_ERROR = "ts must strictly increase within each symbol"
UNIQUE_ERROR = "(symbol, ts) must be unique"
EMPTY_ERROR = "input has no rows"
TS_ZONE_ERROR = "ts must parse as a timestamp, all with an offset or all without (one clock)"

# Columns to show for a row-wise dataframe check (pandera reports every column of the row).
CHECK_COLUMNS = {
    HIGH_ERROR: ["open", "high", "low", "close"],
    LOW_ERROR: ["open", "low", "close"],
    TS_ORDER_ERROR: ["symbol", "ts"],
    UNIQUE_ERROR: ["symbol", "ts"],
}
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


def _floats(series: pd.Series) -> np.ndarray | None:
    """Return ``series`` as float64, or None when it is not numeric (coercion failed earlier)."""
    try:
        return series.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):
        return None


def _finite(series: pd.Series) -> pd.Series:
    values = _floats(series)
    if values is None:
        return pd.Series(True, index=series.index)  # reported once, by the dtype check
    return pd.Series(np.isfinite(values), index=series.index)


def _numeric_frame(df: pd.DataFrame, columns: list[str]) -> list[np.ndarray] | None:
    arrays = [_floats(df[name]) for name in columns]
    return None if any(a is None for a in arrays) else arrays  # type: ignore[return-value]


def _symbol_codes(df: pd.DataFrame) -> np.ndarray:
    codes, uniques = pd.factorize(df["symbol"], sort=False, use_na_sentinel=True)
    # int16 codes let numpy's stable sort use radix sort (several times faster on 1M rows).
    return codes.astype(np.int16) if len(uniques) < 2**15 - 1 else codes


_STEPS_CACHE: list[tuple[weakref.ref[pd.DataFrame], np.ndarray | None]] = []


def _ts_steps_positive(df: pd.DataFrame, *, reuse: bool) -> np.ndarray | None:
    """Return, per row, whether ts is later than the previous row of the same symbol.

    Rows are grouped by symbol in input order (a stable sort on the symbol code), so one
    vectorised comparison covers every symbol. None when ``ts`` is not a datetime column.
    Two checks need this within one validation: the first computes and keeps it
    (``reuse=False``), the second takes it for the same frame object and clears it
    (``reuse=True``), so a frame changed in place between validations is never served stale.
    """
    if reuse and _STEPS_CACHE and _STEPS_CACHE[0][0]() is df:
        return _STEPS_CACHE.pop()[1]
    ok = _compute_ts_steps(df)
    _STEPS_CACHE[:] = [] if reuse else [(weakref.ref(df), ok)]
    return ok


def _compute_ts_steps(df: pd.DataFrame) -> np.ndarray | None:
    if not isinstance(df["ts"].dtype, pd.DatetimeTZDtype | np.dtypes.DateTime64DType):
        return None
    ts = df["ts"].to_numpy(dtype="datetime64[us]", na_value=np.datetime64("NaT")).view("int64")
    codes = _symbol_codes(df)
    if len(codes) < 2:
        return np.ones(len(codes), dtype=bool)
    grouped = bool((codes[1:] >= codes[:-1]).all())  # already one block per symbol: no sort
    order = np.arange(len(codes)) if grouped else np.argsort(codes, kind="stable")
    codes_sorted, ts_sorted = (codes, ts) if grouped else (codes[order], ts[order])
    ok_sorted = np.ones(len(codes), dtype=bool)
    ok_sorted[1:] = (codes_sorted[1:] != codes_sorted[:-1]) | (ts_sorted[1:] > ts_sorted[:-1])
    ok_sorted |= ts_sorted == np.iinfo(np.int64).min  # NaT: reported once, as a null
    if grouped:
        return ok_sorted
    ok = np.empty(len(codes), dtype=bool)
    ok[order] = ok_sorted
    return ok


def _parse_problem_rows(raw: pd.Series) -> pd.Series:
    """Flag rows of an unparsed ``ts`` column that cannot become one UTC clock.

    Only runs when pandera could not coerce the column (it is then still text). It flags the
    rows that mix naive and offset-carrying stamps (the minority); unparsable values are left
    to pandera's own ``coerce_dtype`` failure, which already names each row.
    """
    text = raw.astype("string").str.strip()
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    parsable = parsed.notna().to_numpy(dtype=bool)
    has_offset = text.str.contains(_OFFSET, na=False).to_numpy(dtype=bool)
    ok = np.ones(len(raw), dtype=bool)
    n_aware = int(has_offset[parsable].sum())
    n_naive = int(parsable.sum()) - n_aware
    if n_aware and n_naive:
        minority_is_aware = n_aware < n_naive or (
            n_aware == n_naive and not has_offset[parsable][0]
        )
        ok = ~parsable | (has_offset != minority_is_aware)
    return pd.Series(ok, index=raw.index)


class OhlcvBars(pa.DataFrameModel):
    """One bar per (symbol, ts); prices positive and finite; high/low bound the bar."""

    symbol: Series[str] = pa.Field(str_length={"min_value": 1})
    ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=TS_DTYPE, coerce=True)
    open: Series[float] = pa.Field(gt=0, coerce=True)
    high: Series[float] = pa.Field(gt=0, coerce=True)
    low: Series[float] = pa.Field(gt=0, coerce=True)
    close: Series[float] = pa.Field(gt=0, coerce=True)
    volume: Series[float] = pa.Field(ge=0, coerce=True)

    class Config:
        strict = True  # no undeclared columns
        ordered = False

    @pa.check("open", "high", "low", "close", "volume", name="finite", error=FINITE_ERROR)
    def prices_and_volume_are_finite(cls, series: pd.Series) -> Series[bool]:
        return _finite(series)

    @pa.check("ts", name="one_clock", error=TS_ZONE_ERROR)
    def ts_parses_to_one_clock(cls, series: pd.Series) -> Series[bool]:
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            return pd.Series(True, index=series.index)
        return _parse_problem_rows(series)

    @pa.dataframe_check(name="high_bounds_the_bar", error=HIGH_ERROR)
    def high_bounds_the_bar(cls, df: pd.DataFrame) -> Series[bool]:
        arrays = _numeric_frame(df, ["open", "high", "low", "close"])
        if arrays is None:
            return pd.Series(True, index=df.index)
        open_, high, low, close = arrays
        with np.errstate(invalid="ignore"):
            ok = high >= np.maximum(np.maximum(open_, close), low)
        return pd.Series(
            ok | np.isnan(high) | np.isnan(open_) | np.isnan(close) | np.isnan(low), index=df.index
        )

    @pa.dataframe_check(name="low_bounds_the_bar", error=LOW_ERROR)
    def low_bounds_the_bar(cls, df: pd.DataFrame) -> Series[bool]:
        arrays = _numeric_frame(df, ["open", "low", "close"])
        if arrays is None:
            return pd.Series(True, index=df.index)
        open_, low, close = arrays
        with np.errstate(invalid="ignore"):
            ok = low <= np.minimum(open_, close)
        return pd.Series(ok | np.isnan(low) | np.isnan(open_) | np.isnan(close), index=df.index)

    @pa.dataframe_check(name="ts_increases_per_symbol", error=TS_ORDER_ERROR)
    def ts_increases_per_symbol(cls, df: pd.DataFrame) -> Series[bool]:
        ok = _ts_steps_positive(df, reuse=False)
        return pd.Series(True if ok is None else ok, index=df.index)

    @pa.dataframe_check(name="unique_symbol_ts", error=UNIQUE_ERROR)
    def symbol_ts_unique(cls, df: pd.DataFrame) -> Series[bool]:
        # Strictly increasing ts per symbol implies uniqueness, so the exact (slower) duplicate
        # search runs only when some step is not positive.
        steps = _ts_steps_positive(df, reuse=True)
        if steps is not None and steps.all():
            return pd.Series(True, index=df.index)
        return ~df.duplicated(["symbol", "ts"], keep=False)

    @pa.dataframe_check(name="not_empty", error=EMPTY_ERROR)
    def not_empty(cls, df: pd.DataFrame) -> bool:
        return len(df) > 0


class AnalyticsSnapshot(pa.DataFrameModel):
    """One row per (snapshot_ts, symbol) of metrics computed from bars with ts <= snapshot_ts."""

    snapshot_ts: Series[pd.DatetimeTZDtype] = pa.Field(dtype_kwargs=TS_DTYPE, coerce=True)
    symbol: Series[str] = pa.Field(str_length={"min_value": 1})
    trailing_return: Series[float] = pa.Field(coerce=True)
    volatility: Series[float] = pa.Field(ge=0, coerce=True)
    return_rank: Series[float] = pa.Field(ge=1, coerce=True)

    class Config:
        strict = True
        ordered = False
        unique = ["snapshot_ts", "symbol"]  # noqa: RUF012 - pandera reads a class attribute

    @pa.check("trailing_return", "volatility", "return_rank", name="finite", error=FINITE_ERROR)
    def metrics_are_finite(cls, series: pd.Series) -> Series[bool]:
        return _finite(series)


def _is_exception_text(value: object) -> bool:
    return isinstance(value, str) and bool(re.match(r"^\w+(Error|Exception)\(", value))


def failure_table(errors: SchemaErrors) -> pd.DataFrame:
    """Return one row per (input row, failed check): columns ``index, column, check, value``.

    pandera lists a row-wise dataframe check once per column of the row; this keeps the columns
    the check is about. A column whose type could not be coerced makes later checks on it raise:
    those consequential failures are dropped because the row-level coercion failure says it all.
    """
    cases = errors.failure_cases.copy()
    cases["index"] = cases["index"].astype("object")
    coerce_failed = cases["check"].astype(str).str.startswith(("coerce_dtype", "dtype("))
    row_coerce_columns = set(cases.loc[coerce_failed & cases["index"].notna(), "column"])
    row_columns = set(cases.loc[cases["index"].notna(), "column"])
    keep = []
    for row in cases.itertuples(index=False):
        check = str(row.check)
        column = row.column if isinstance(row.column, str) else str(row.column)
        if check.startswith("dtype(") and column in row_coerce_columns:
            continue  # same rows as coerce_dtype
        if (
            pd.isna(row.index)
            and check.startswith(("coerce_dtype", "dtype("))
            and column in row_columns
        ):
            continue  # whole-column summary of the row failures listed anyway
        if pd.isna(row.index) and _is_exception_text(row.failure_case) and coerce_failed.any():
            continue  # the check could not run on a column of the wrong type
        keep.append((row.index, column, check, row.failure_case))
    table = pd.DataFrame(keep, columns=["index", "column", "check", "value"])
    return _collapse_row_checks(table)


def _collapse_row_checks(table: pd.DataFrame) -> pd.DataFrame:
    """Merge the per-column entries of a row-wise dataframe check into one entry per row."""
    rows = []
    for (index, check), group in table.groupby(["index", "check"], sort=False, dropna=False):
        columns = CHECK_COLUMNS.get(check)
        if columns is None or pd.isna(index):
            rows.extend(group.itertuples(index=False, name=None))
            continue
        values = dict(zip(group["column"], group["value"], strict=False))
        shown = ", ".join(f"{name}={_short(values.get(name))}" for name in columns)
        rows.append((index, ",".join(columns), check, shown))
    out = pd.DataFrame(rows, columns=["index", "column", "check", "value"])
    order = pd.to_numeric(out["index"], errors="coerce").fillna(-1)
    return out.iloc[np.argsort(order.to_numpy(), kind="stable")].reset_index(drop=True)


def _short(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def default_row_label(index: object) -> str:
    """Label a RangeIndex row as its file line number (header = line 1)."""
    return f"row {int(index) + 2}"  # type: ignore[call-overload]


def format_failures(
    table: pd.DataFrame, limit: int = 20, row_label: Callable[[object], str] = default_row_label
) -> str:
    """Return the report text: up to ``limit`` failures, one line each, then the total."""
    lines = []
    for row in table.head(limit).itertuples(index=False):
        where = "whole table" if pd.isna(row.index) else row_label(row.index)
        value = row.value if "," in str(row.column) else repr(row.value)
        lines.append(f"  {where}: column {row.column}: check {row.check}: value {value}")
    if len(table) > limit:
        lines.append(f"  ... and {len(table) - limit} more ({len(table)} failures in all)")
    return "\n".join(lines)


def failure_report(errors: SchemaErrors, limit: int = 20) -> tuple[str, int]:
    """Return (report text listing up to ``limit`` failing rows, total failure count)."""
    table = failure_table(errors)
    return format_failures(table, limit), len(table)


def collect_failures(
    schema: type[pa.DataFrameModel], df: pd.DataFrame, inplace: bool = False
) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """Validate ``df`` lazily; return (validated frame or None, ``failure_table`` of every failure).

    ``inplace=True`` skips pandera's defensive copy (coercion then changes ``df`` itself): only
    for a caller that owns the frame.
    """
    try:
        return schema.validate(df, lazy=True, inplace=inplace), pd.DataFrame(
            columns=["index", "column", "check", "value"]
        )
    except SchemaErrors as errors:
        return None, failure_table(errors)


def validate_or_raise(
    schema: type[pa.DataFrameModel],
    df: pd.DataFrame,
    source: str,
    row_label: Callable[[object], str] = default_row_label,
) -> pd.DataFrame:
    """Validate ``df`` lazily; on failure raise ``DataValidationError`` naming ``source``.

    ``row_label`` turns an index value into the place a user can find the row; by default a
    RangeIndex straight from a file is shown as its line number (header = line 1).
    """
    validated, table = collect_failures(schema, df)
    if validated is not None:
        return validated
    report = format_failures(table, row_label=row_label)
    raise DataValidationError(
        f"{source}: {len(table)} invalid value(s) against {schema.__name__}; nothing was written. "
        f"Fix the rows below and run again:\n{report}",
        report=report,
        n_failures=len(table),
    )
