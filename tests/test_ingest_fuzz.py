"""Bad input at scale (issue 6, item 3): hypothesis feeds malformed CSV and Parquet to the ingest producer.

Whatever the bytes, ``producers.ingest`` either ingests cleanly (every row lands, the DB still
satisfies the bar contract, one new version) or refuses with a ``UserFacingError`` (the CLI prints
it and exits 2) and leaves the market DB byte-for-byte unchanged: same content version, same rows,
no staging file left behind. Any other exception would be a traceback on the user's console.
Most examples run in-process for speed; a few go through the real CLI in a subprocess.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from components.data.market_db import content_version
from components.data.schemas import OhlcvBars
from components.errors import UserFacingError
from producers.ingest import ingest
from tests.helpers import REPO, make_market_db

COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume"]
BASE_START = pd.Timestamp("2024-01-02T14:30", tz="UTC")


def base_bars() -> pd.DataFrame:
    """Two symbols x 30 minutes already in the market DB (fuzzed rows may collide with them)."""
    ts = pd.date_range(BASE_START, periods=30, freq="min")
    rows = [
        {
            "symbol": s,
            "ts": t,
            "open": 10.0 + i,
            "high": 11.0 + i,
            "low": 9.0 + i,
            "close": 10.5 + i,
            "volume": 100.0,
        }
        for s in ("AAA", "BBB")
        for i, t in enumerate(ts)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(tmp_path_factory.mktemp("base") / "market.duckdb", base_bars())


# -- input generators ---------------------------------------------------------------------------
@st.composite
def valid_bars(draw: st.DrawFn) -> pd.DataFrame:
    """1-12 valid bars per symbol, starting inside or after the stored range (collisions possible)."""
    frames = []
    for symbol in draw(
        st.lists(st.sampled_from(["AAA", "BBB", "CCC", "dé"]), min_size=1, max_size=3, unique=True)
    ):
        n = draw(st.integers(1, 12))
        start = BASE_START + pd.Timedelta(minutes=draw(st.sampled_from([-2, 15, 30, 45, 90, 1440])))
        step = pd.Timedelta(minutes=draw(st.sampled_from([1, 5, 60])))
        price = draw(st.floats(0.01, 1e6))
        rows = []
        for k in range(n):
            close = price * (1 + draw(st.floats(-0.05, 0.05)))
            rows.append(
                {
                    "symbol": symbol,
                    "ts": start + k * step,
                    "open": price,
                    "high": max(price, close) * 1.01,
                    "low": min(price, close) * 0.99,
                    "close": close,
                    "volume": float(draw(st.integers(0, 10**9))),
                }
            )
            price = close
        frames.append(pd.DataFrame(rows))
    return pd.concat(frames, ignore_index=True)


SOMETIMES = st.sampled_from([False, False, True])  # a third of the time (booleans lean to False)
BAD_CELLS = [
    "",
    "abc",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "-5",
    "0",
    "0x10",
    "1,5",
    " 7 ",
    "9" * 400,
    "None",
    "null",
    "2024-13-45",
    "2024-03-10T02:30:00",
    "2024-01-02T14:30:00+25:00",
    "10000-01-01",
    "1677-09-21",
    "2262-04-12T00:00:00",
    '"',
    "'",
    "\x00",
    "日本",
    "1e308",
    "-0",
    "+1",
    "1_000",
]


def cell_mutation(frame: pd.DataFrame, draw: st.DrawFn) -> pd.DataFrame:
    out = frame.astype(object).copy()
    for _ in range(draw(st.integers(1, 4))):
        row, col = draw(st.integers(0, len(out) - 1)), draw(st.sampled_from(COLUMNS))
        out.iat[row, COLUMNS.index(col)] = draw(st.sampled_from(BAD_CELLS))
    return out


def column_mutation(frame: pd.DataFrame, draw: st.DrawFn) -> pd.DataFrame:
    kind = draw(st.sampled_from(["drop", "rename", "duplicate", "extra", "reorder", "upper"]))
    col = draw(st.sampled_from(COLUMNS))
    if kind == "drop":
        return frame.drop(columns=[col])
    if kind == "rename":
        return frame.rename(
            columns={col: draw(st.sampled_from(["Date", "px", "", " ts", "Symbol", "timestamp"]))}
        )
    if kind == "duplicate":
        return pd.concat([frame, frame[[col]]], axis=1)
    if kind == "extra":
        return frame.assign(**{"Adj Close": 1.0})
    if kind == "upper":
        return frame.rename(columns=str.upper)
    return frame[list(reversed(frame.columns))]


def row_mutation(frame: pd.DataFrame, draw: st.DrawFn) -> pd.DataFrame:
    kind = draw(
        st.sampled_from(["swap_hl", "negative", "dup_row", "reverse_ts", "huge", "zero_price"])
    )
    out = frame.copy()
    row = draw(st.integers(0, len(out) - 1))
    if kind == "swap_hl":
        out.loc[row, ["high", "low"]] = out.loc[row, ["low", "high"]].to_numpy()
    elif kind == "negative":
        out.loc[row, draw(st.sampled_from(["open", "volume", "low"]))] = -1.0
    elif kind == "dup_row":
        out = pd.concat([out, out.iloc[[row]]], ignore_index=True)
    elif kind == "reverse_ts":
        out = out.iloc[::-1].reset_index(drop=True)
    elif kind == "huge":
        out.loc[row, ["open", "high", "low", "close"]] = [1e300, 1.7e308, 1e300, 1e300]
    else:
        out.loc[row, ["open", "low"]] = 0.0
    return out


def to_csv_bytes(frame: pd.DataFrame, draw: st.DrawFn) -> bytes:
    out = frame.copy()
    if "ts" in out.columns:
        out["ts"] = [t.isoformat() if isinstance(t, pd.Timestamp) else t for t in out["ts"]]
    text = out.to_csv(index=False, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    encoding = draw(
        st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])
    )
    return text.encode(encoding, errors="replace")


def byte_mutation(data: bytes, draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            [
                "truncate",
                "garbage_insert",
                "garbage_only",
                "quote",
                "extra_field",
                "empty",
                "header_only",
                "nul",
            ]
        )
    )
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if kind == "garbage_insert":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    if kind == "garbage_only":
        return draw(st.binary(min_size=0, max_size=2048))
    if kind == "quote":
        at = draw(st.integers(0, len(data)))
        return data[:at] + b'"' + data[at:]
    if kind == "extra_field":
        lines = data.split(b"\n")
        k = draw(st.integers(0, len(lines) - 1))
        lines[k] += b",extra"
        return b"\n".join(lines)
    if kind == "empty":
        return b""
    if kind == "header_only":
        return data.split(b"\n", 1)[0] + b"\n"
    return data.replace(b",", b"\x00,", 1)


def to_parquet_bytes(frame: pd.DataFrame, draw: st.DrawFn) -> bytes:
    out = frame.copy()
    kind = draw(
        st.sampled_from(["as_is", "string_prices", "int_ts", "naive_ts", "nulls", "dictionary"])
    )
    if kind == "string_prices" and "close" in out.columns:
        out["close"] = out["close"].astype(str)
    elif kind == "int_ts" and "ts" in out.columns:
        out["ts"] = [t.value if isinstance(t, pd.Timestamp) else 0 for t in out["ts"]]
    elif kind == "naive_ts" and "ts" in out.columns:
        out["ts"] = pd.to_datetime(out["ts"], utc=True, errors="coerce").dt.tz_localize(None)
    elif kind == "nulls":
        out = out.astype(object)
        out.iat[draw(st.integers(0, len(out) - 1)), draw(st.integers(0, len(out.columns) - 1))] = (
            None
        )
    try:
        table = pa.Table.from_pandas(
            out.astype(object) if kind == "dictionary" else out, preserve_index=False
        )
    except (
        pa.ArrowInvalid,
        pa.ArrowTypeError,
    ):  # mixed types in a column: store every column as text
        table = pa.Table.from_pandas(out.astype(str), preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@st.composite
def malformed_inputs(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """Return (file suffix, bytes, tz) of a CSV or Parquet input, valid or broken in one or more ways."""
    frame = draw(valid_bars())
    if draw(SOMETIMES):
        frame = row_mutation(frame, draw)
    if draw(SOMETIMES):
        frame = cell_mutation(frame, draw)
    if draw(SOMETIMES):  # last: the mutations above expect the seven columns
        frame = column_mutation(frame, draw)
    tz = draw(st.sampled_from(["UTC", "UTC", "America/New_York"]))
    if draw(st.booleans()):
        data = to_csv_bytes(frame, draw)
        if draw(SOMETIMES):
            data = byte_mutation(data, draw)
        return draw(st.sampled_from([".csv", ".csv", ".txt"])), data, tz
    try:
        data = to_parquet_bytes(frame, draw)
    except ValueError:  # duplicate column names: pyarrow cannot even write it, feed bytes instead
        data = draw(st.binary(max_size=512))
    if draw(SOMETIMES):
        data = data[: draw(st.integers(0, len(data)))]
    return draw(st.sampled_from([".parquet", ".pq"])), data, tz


# -- the property --------------------------------------------------------------------------------
def db_state(path: Path) -> tuple[int, int, str]:
    """Return (content version, bar count, sha256 of the file) of a market DB."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        version, rows = content_version(con), con.execute("SELECT count(*) FROM bars").fetchone()[0]
    finally:
        con.close()
    return version, rows, hashlib.sha256(path.read_bytes()).hexdigest()


def assert_clean_ingest_or_clear_refusal(call: Callable[[], Any], db: Path, source: Path) -> str:
    """Run ``call``; return "ingested" or "refused" after checking the DB either way."""
    before = db_state(db)
    try:
        result, _plan = call()
    except UserFacingError as exc:
        assert exc.exit_code == 2
        message = str(exc)
        assert message.strip() and "Traceback" not in message
        assert db_state(db) == before, "a refused ingest changed the market DB"
        assert not list(db.parent.glob(f"{db.name}.staging-*")), "a staging file was left behind"
        event(f"refused: {type(exc).__name__}")
        return "refused"
    version, rows, _digest = db_state(db)
    assert version == before[0] + (1 if result.published else 0)
    assert rows == before[1] + result.rows_new
    con = duckdb.connect(str(db), read_only=True)
    try:
        stored = con.execute("SELECT * FROM bars ORDER BY symbol, ts").df()
    finally:
        con.close()
    OhlcvBars.validate(stored, lazy=True)  # what landed still satisfies the bar contract
    event("ingested" if result.published else "no-op")
    return "ingested"


FUZZ_SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}


def fuzz_once(case: tuple[str, bytes, str], base_db: Path) -> None:
    suffix, data, tz = case
    with tempfile.TemporaryDirectory() as tmp:
        db, source = Path(tmp) / "market.duckdb", Path(tmp) / f"input{suffix}"
        shutil.copyfile(base_db, db)
        source.write_bytes(data)
        assert_clean_ingest_or_clear_refusal(
            lambda: ingest(str(source), str(db), tz=tz, lock_timeout_s=5), db, source
        )


@settings(max_examples=40, **FUZZ_SETTINGS)
@given(case=malformed_inputs())
def test_ingest_when_fuzzed_csv_or_parquet_then_clean_ingest_or_clear_refusal_and_db_untouched(
    case: tuple[str, bytes, str], base_db: Path
) -> None:
    fuzz_once(case, base_db)


@pytest.mark.slow
@settings(max_examples=300, **FUZZ_SETTINGS)
@given(case=malformed_inputs())
def test_ingest_when_300_fuzzed_files_then_clean_ingest_or_clear_refusal_and_db_untouched(
    case: tuple[str, bytes, str], base_db: Path
) -> None:
    fuzz_once(case, base_db)


# -- a few through the real CLI ----------------------------------------------------------------------
CLI_CASES = {
    "garbage_bytes": (".csv", bytes(range(256)) * 8),
    "utf16": (
        ".csv",
        "symbol,ts,open,high,low,close,volume\nAAA,2024-02-01,1,2,0.5,1.5,10\n".encode("utf-16"),
    ),
    "missing_column": (".csv", b"symbol,ts,open,high,low,close\nAAA,2024-02-01,1,2,0.5,1.5\n"),
    "wrong_types": (
        ".csv",
        b"symbol,ts,open,high,low,close,volume\nAAA,yesterday,one,2,0.5,1.5,10\n"
        b"AAA,2024-02-01,1e400,2,0.5,1.5,-3\n",
    ),
    "broken_parquet": (".parquet", b"PAR1" + bytes(100) + b"PAR1"),
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.slow] if name in ("utf16", "missing_column") else [])
        for name in CLI_CASES
    ],
)
def test_ingest_cli_when_malformed_file_then_exit_2_no_traceback_db_unchanged(
    name: str, base_db: Path, tmp_path: Path
) -> None:
    # Arrange
    suffix, data = CLI_CASES[name]
    db, source = tmp_path / "market.duckdb", tmp_path / f"input{suffix}"
    shutil.copyfile(base_db, db)
    source.write_bytes(data)
    before = db_state(db)
    # Act
    proc = subprocess.run(
        [sys.executable, "-m", "producers.ingest", f"source={source}", f"db.path={db}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Assert
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("error:") == 1 and source.name in proc.stderr
    assert db_state(db) == before
