"""Bulk writes into ``bars`` and ``datasets`` (used inside a ``publish`` transaction).

Rule for rows that already exist (same symbol and ts): identical values are skipped; different
values are a conflict that fails the whole write (nothing is written) unless the caller asks for
``on_conflict="replace"``, which overwrites the stored bar with the incoming one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from components.data.duckdb_client import db_cursor
from components.data.market_db import content_version, has_table
from components.data.schemas import BAR_COLUMNS, OhlcvBars, validate_or_raise
from components.errors import ConfigError, DataValidationError
from producers.publish import Unchanged, publish

ON_CONFLICT = ("error", "replace")
PRICE_COLUMNS = ["open", "high", "low", "close", "volume"]
_DIFFERS = " OR ".join(f"i.{c} IS DISTINCT FROM b.{c}" for c in PRICE_COLUMNS)


@dataclass
class DatasetRecord:
    """One row of ``datasets``: a source that was written, identified by its sha256."""

    path: str
    sha256: str
    rows: int
    symbols: list[str]
    first_ts: pd.Timestamp | None
    last_ts: pd.Timestamp | None

    @classmethod
    def of(cls, path: str, sha256: str, bars: pd.DataFrame) -> DatasetRecord:
        ts = bars["ts"]
        return cls(
            path=path,
            sha256=sha256,
            rows=len(bars),
            symbols=sorted(bars["symbol"].unique().tolist()),
            first_ts=ts.min() if len(ts) else None,
            last_ts=ts.max() if len(ts) else None,
        )


@dataclass
class WriteResult:
    """What a write did; ``published`` is False when it was a no-op."""

    db_path: str
    published: bool = False
    rows_new: int = 0
    rows_identical: int = 0
    rows_replaced: int = 0
    content_version: int = 0
    datasets: list[DatasetRecord] = field(default_factory=list)

    @property
    def symbols(self) -> list[str]:
        return sorted({s for d in self.datasets for s in d.symbols})

    @property
    def first_ts(self) -> pd.Timestamp | None:
        stamps = [d.first_ts for d in self.datasets if d.first_ts is not None]
        return min(stamps) if stamps else None

    @property
    def last_ts(self) -> pd.Timestamp | None:
        stamps = [d.last_ts for d in self.datasets if d.last_ts is not None]
        return max(stamps) if stamps else None


def check_on_conflict(value: str) -> str:
    """Return ``value`` if it is a known conflict rule, else raise ConfigError naming the choices."""
    if value not in ON_CONFLICT:
        raise ConfigError(
            f"on_conflict must be one of {', '.join(ON_CONFLICT)}, was {value!r}; use on_conflict=error "
            "(default: refuse bars that differ from stored ones) or on_conflict=replace (overwrite them)"
        )
    return value


def frame_sha256(bars: pd.DataFrame) -> str:
    """Return a content hash of validated bars (column order and row order included)."""
    digest = hashlib.sha256(",".join(BAR_COLUMNS).encode())
    digest.update(pd.util.hash_pandas_object(bars["symbol"], index=False).to_numpy().tobytes())
    digest.update(bars["ts"].to_numpy(dtype="datetime64[us]").view("int64").tobytes())
    for name in PRICE_COLUMNS:
        digest.update(np.ascontiguousarray(bars[name].to_numpy(dtype="float64")).tobytes())
    return digest.hexdigest()


def known_hashes(db_path: str | Path, hashes: list[str]) -> set[str]:
    """Return which of ``hashes`` the live DB already lists in ``datasets`` (read-only peek)."""
    if not Path(db_path).exists() or not hashes:
        return set()
    with db_cursor(db_path) as con:
        return _known(con, hashes)


def _known(con: duckdb.DuckDBPyConnection, hashes: list[str]) -> set[str]:
    if not has_table(con, "datasets"):
        return set()
    rows = con.execute(
        "SELECT sha256 FROM datasets WHERE list_contains(?, sha256)", [hashes]
    ).fetchall()
    return {r[0] for r in rows}


def merge_bars(
    con: duckdb.DuckDBPyConnection, bars: pd.DataFrame, source: str, on_conflict: str
) -> tuple[int, int, int]:
    """Insert validated ``bars``; return (new, identical, replaced) row counts.

    Raises ``DataValidationError`` naming the first conflicting symbol and ts when a row exists
    with other values and ``on_conflict`` is ``"error"``.
    """
    table = pa.Table.from_pandas(bars[BAR_COLUMNS], preserve_index=False)
    con.register("incoming_bars", table)
    try:
        overlap = con.execute(
            f"SELECT count(*) FILTER (WHERE {_DIFFERS}), count(*) FILTER (WHERE NOT ({_DIFFERS})) "
            "FROM incoming_bars i JOIN bars b ON b.symbol = i.symbol AND b.ts = i.ts"
        ).fetchall()[0]
        differing, identical = int(overlap[0]), int(overlap[1])
        if differing and on_conflict != "replace":
            raise _conflict_error(con, source, differing)
        if differing:
            con.execute(
                f"DELETE FROM bars b USING incoming_bars i WHERE b.symbol = i.symbol AND b.ts = i.ts AND ({_DIFFERS})"
            )
        con.execute(
            f"INSERT INTO bars SELECT {', '.join('i.' + c for c in BAR_COLUMNS)} FROM incoming_bars i "
            "WHERE NOT EXISTS (SELECT 1 FROM bars b WHERE b.symbol = i.symbol AND b.ts = i.ts) "
            "ORDER BY i.ts, i.symbol"
        )
    finally:
        con.unregister("incoming_bars")
    return len(bars) - identical - differing, identical, differing


def _conflict_error(
    con: duckdb.DuckDBPyConnection, source: str, differing: int
) -> DataValidationError:
    row = con.execute(
        f"SELECT i.symbol, i.ts, {', '.join(f'b.{c}, i.{c}' for c in PRICE_COLUMNS)} "
        f"FROM incoming_bars i JOIN bars b ON b.symbol = i.symbol AND b.ts = i.ts WHERE {_DIFFERS} "
        "ORDER BY i.ts, i.symbol LIMIT 1"
    ).fetchall()[0]
    symbol, ts, *values = row
    diffs = ", ".join(
        f"{name} {values[2 * k]!r} in DB vs {values[2 * k + 1]!r} in input"
        for k, name in enumerate(PRICE_COLUMNS)
        if values[2 * k] != values[2 * k + 1]
    )
    when = pd.Timestamp(ts).tz_convert("UTC").isoformat()
    report = f"  {symbol} {when}: {diffs}"
    return DataValidationError(
        f"{source}: {differing} bar(s) conflict with bars already in the market DB (same symbol and "
        f"ts, different values), the first is {symbol} at {when} ({diffs}); nothing was written. "
        "Fix the input, or overwrite the stored bars with on_conflict=replace.",
        report=report,
        n_failures=differing,
    )


def record_dataset(con: duckdb.DuckDBPyConnection, record: DatasetRecord) -> None:
    """Add ``record`` to ``datasets`` (replacing a row with the same sha256)."""
    con.execute(
        "INSERT OR REPLACE INTO datasets VALUES (?, ?, ?, ?, ?, ?, now())",
        [
            record.path,
            record.sha256,
            record.rows,
            ",".join(record.symbols),
            None if record.first_ts is None else record.first_ts.to_pydatetime(),
            None if record.last_ts is None else record.last_ts.to_pydatetime(),
        ],
    )


def write_bars(
    db_path: str | Path,
    df: pd.DataFrame,
    source_label: str,
    *,
    on_conflict: str = "error",
    lock_timeout_s: float = 60.0,
    sha256: str | None = None,
) -> WriteResult:
    """Validate ``df`` as ``OhlcvBars`` and publish it into the market DB at ``db_path``.

    ``source_label`` names the data in messages and in ``datasets.path``. ``sha256`` identifies
    the dataset (default: a hash of the bars); a dataset already listed is a no-op.
    """
    bars = validate_or_raise(OhlcvBars, df, source_label)
    record = DatasetRecord.of(source_label, sha256 or frame_sha256(bars), bars)
    result = WriteResult(db_path=str(db_path), datasets=[record])
    if known_hashes(db_path, [record.sha256]):
        return result

    def apply(con: duckdb.DuckDBPyConnection) -> WriteResult | Unchanged[WriteResult]:
        if _known(con, [record.sha256]):
            return Unchanged(result)
        result.rows_new, result.rows_identical, result.rows_replaced = merge_bars(
            con, bars, source_label, on_conflict
        )
        record_dataset(con, record)
        result.published = True
        result.content_version = content_version(con)
        return result

    return publish(db_path, apply, lock_timeout_s)
