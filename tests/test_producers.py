"""Producers: demo, ingest, analytics and the atomic publish they share (real DuckDB files, no mocks)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from components.cli import run_cli
from components.data.market_db import content_version
from components.data.schemas import BAR_COLUMNS, OhlcvBars, validate_or_raise
from components.errors import DataRangeError, DataValidationError, PublishLockTimeoutError
from producers import analytics as analytics_cli
from producers import demo as demo_cli
from producers import ingest as ingest_cli
from producers.analytics import AnalyticsConfig, run_analytics, snapshot_sql
from producers.demo import generate_bars
from producers.ingest import ingest
from producers.publish import Unchanged, lock_path, publish
from producers.store import write_bars
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]
SHARED_CSVS = sorted(SHARED_DATA.glob("*.csv"))  # the uniform files; raw/ is another format
HEADER = "symbol,ts,open,high,low,close,volume\n"


# ---------------------------------------------------------------------------- helpers


def db_state(path: Path) -> tuple[int, int, str]:
    """Return (content version, bar count, file sha256) of the market DB at ``path``."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        version = content_version(con)
        count = con.execute("SELECT count(*) FROM bars").fetchall()[0][0]
    finally:
        con.close()
    return version, count, hashlib.sha256(path.read_bytes()).hexdigest()


def read_bars(path: Path) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT {', '.join(BAR_COLUMNS)} FROM bars ORDER BY ts, symbol").df()
    finally:
        con.close()


def read_snapshots(path: Path) -> pd.DataFrame:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT * FROM analytics_snapshots ORDER BY snapshot_ts, symbol").df()
    finally:
        con.close()


def physically_ordered(path: Path) -> bool:
    con = duckdb.connect(str(path), read_only=True)
    try:
        bad = con.execute(
            "SELECT count(*) FROM (SELECT ts, symbol, lag(ts) OVER w AS pt, lag(symbol) OVER w AS ps "
            "FROM bars WINDOW w AS (ORDER BY rowid)) WHERE pt IS NOT NULL AND (ts < pt OR (ts = pt AND symbol <= ps))"
        ).fetchall()[0][0]
    finally:
        con.close()
    return bad == 0


def run_main(main: Callable[[], None], args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run a producer CLI in this process exactly as ``python -m`` does; return its exit code."""
    monkeypatch.setattr(sys, "argv", ["producer", *args])
    try:
        run_cli(main)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def run_module(
    module: str, args: list[str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def data_rows(csv_path: Path) -> int:
    return sum(1 for line in csv_path.read_text().splitlines()[1:] if line.strip())


# ---------------------------------------------------------------------------- demo


def test_generate_bars_when_same_seed_then_identical_and_valid() -> None:
    # Act
    first = generate_bars(7, n_symbols=4, n_bars=3000)
    again = generate_bars(7, n_symbols=4, n_bars=3000)
    other = generate_bars(8, n_symbols=4, n_bars=3000)
    # Assert
    pd.testing.assert_frame_equal(first, again)
    assert not first[["open", "close"]].equals(other[["open", "close"]])
    assert list(first.columns) == BAR_COLUMNS and str(first["ts"].dtype) == "datetime64[us, UTC]"
    validate_or_raise(OhlcvBars, first, "generated")


def test_generate_bars_when_stagger_and_gaps_then_unequal_histories_with_holes() -> None:
    # Act
    bars = generate_bars(1, n_symbols=5, n_bars=4000, stagger=0.5, gap_rate=0.01)
    # Assert
    starts = bars.groupby("symbol")["ts"].min()
    assert starts.is_monotonic_increasing and starts.nunique() == 5
    steps = bars.groupby("symbol")["ts"].diff().dropna()
    assert (steps > pd.Timedelta(minutes=1)).sum() > 10  # missing minutes
    assert bars.groupby("symbol").size().max() < 4000
    assert bars[["ts", "symbol"]].equals(
        bars.sort_values(["ts", "symbol"])[["ts", "symbol"]].reset_index(drop=True)
    )


def test_generate_bars_when_no_stagger_no_gaps_then_full_grid() -> None:
    bars = generate_bars(2, n_symbols=10, n_bars=1000, stagger=0.0, gap_rate=0.0)
    assert len(bars) == 10_000 and bars["symbol"].nunique() == 10


def test_demo_cli_when_run_twice_then_second_run_is_a_noop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    db = tmp_path / "demo.duckdb"
    args = [f"db.path={db}", "demo.n_bars=3000", "demo.seed=11"]
    # Act
    first = run_main(demo_cli.main, args, monkeypatch)
    out_first = capsys.readouterr().out
    state = db_state(db)
    second = run_main(demo_cli.main, args, monkeypatch)
    out_second = capsys.readouterr().out
    # Assert
    assert first == 0 and re.match(
        rf"^demo: wrote \d+ bars of 5 symbols .* to {re.escape(str(db))}, content version 1$",
        out_first.strip(),
    )
    assert (
        second == 0
        and out_second.strip() == f"demo: these bars (seed=11) are already in {db}; nothing to do."
    )
    assert db_state(db) == state


def test_demo_cli_when_bad_override_then_exit_2_and_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Act
    code = run_main(
        demo_cli.main, [f"db.path={tmp_path / 'd.duckdb'}", "demo.n_symbols=zero"], monkeypatch
    )
    err = capsys.readouterr().err
    # Assert
    assert code == 2
    assert (
        err.count("\n") == 1
        and err.startswith("error: ")
        and "demo.n_symbols" in err
        and "zero" in err
    )
    assert not (tmp_path / "d.duckdb").exists()


def test_demo_then_analytics_cli_when_run_from_repo_root_then_db_has_bars_and_snapshots(
    tmp_path: Path,
) -> None:
    """The Makefile's demo-db target runs exactly these two commands."""
    # Arrange
    db = tmp_path / "market" / "demo.duckdb"
    # Act
    demo = run_module("producers.demo", [f"db.path={db}"])
    analytics = run_module("producers.analytics", [f"db.path={db}"])
    # Assert
    assert demo.returncode == 0, demo.stderr
    assert analytics.returncode == 0, analytics.stderr
    assert re.match(
        r"^analytics: wrote \d+ rows \(\d+ snapshots x up to 5 symbols\) to .*, content version 2$",
        analytics.stdout.strip(),
    )
    assert db_state(db)[:2] == (2, int(re.search(r"wrote (\d+) bars", demo.stdout).group(1)))  # type: ignore[union-attr]
    assert not (REPO / ".hydra").exists()  # producers write no Hydra run dir


# ---------------------------------------------------------------------------- ingest


@pytest.mark.parametrize("csv_path", SHARED_CSVS, ids=[p.name for p in SHARED_CSVS])
def test_ingest_when_shared_csv_then_every_row_lands(csv_path: Path, tmp_path: Path) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    expected = data_rows(csv_path)
    # Act
    result, _ = ingest(str(csv_path), str(db))
    # Assert
    assert result.published and result.rows_new == expected
    version, count, _ = db_state(db)
    assert (version, count) == (1, expected)
    assert physically_ordered(db)
    con = duckdb.connect(str(db), read_only=True)
    ((rows, sha),) = con.execute("SELECT rows, sha256 FROM datasets").fetchall()
    con.close()
    assert rows == expected and sha == hashlib.sha256(csv_path.read_bytes()).hexdigest()


def test_ingest_cli_when_same_file_twice_then_second_is_noop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    source = SHARED_DATA / "goog_daily_2004_2013.csv"
    # Act: the exact CLI contract in a real process, then the repeat in this one
    first = run_module("producers.ingest", [f"source={source}", f"db.path={db}"])
    state = db_state(db)
    second = run_main(ingest_cli.main, [f"source={source}", f"db.path={db}"], monkeypatch)
    second_out = capsys.readouterr().out
    # Assert
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        f"ingest: 2148 new bars; 1 symbol(s) GOOG; 2004-08-19T00:00:00+00:00 .. 2013-03-01T00:00:00+00:00; "
        f"into {db}, content version 1."
    )
    assert second == 0
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    assert second_out.strip() == (
        f"ingest: already ingested, nothing to do: goog_daily_2004_2013.csv (sha256 {sha[:12]}) in {db}."
    )
    assert db_state(db) == state


def test_ingest_when_goog_then_wiki_then_conflict_named_and_db_unchanged(tmp_path: Path) -> None:
    """GOOG is in both files with different values: refused unless on_conflict=replace."""
    # Arrange
    db = tmp_path / "m.duckdb"
    ingest(str(SHARED_DATA / "goog_daily_2004_2013.csv"), str(db))
    before = db_state(db)
    wiki = str(SHARED_DATA / "wiki_stocks_daily_2000_2013.csv")
    # Act / Assert
    with pytest.raises(
        DataValidationError,
        match=r"^wiki_stocks_daily_2000_2013\.csv: 2148 bar\(s\) conflict with bars already in the market DB .* the first is GOOG at 2004-08-19T00:00:00\+00:00 \(open 100\.0 in DB vs 100\.01 in input, .*on_conflict=replace\.$",
    ):
        ingest(wiki, str(db))
    assert db_state(db) == before


def test_ingest_when_conflict_and_on_conflict_replace_then_input_wins(tmp_path: Path) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    ingest(str(SHARED_DATA / "goog_daily_2004_2013.csv"), str(db))
    wiki = SHARED_DATA / "wiki_stocks_daily_2000_2013.csv"
    # Act
    result, _ = ingest(str(wiki), str(db), on_conflict="replace")
    # Assert
    assert (result.rows_new, result.rows_replaced, result.rows_identical) == (12154 - 2148, 2148, 0)
    stored = read_bars(db)
    expected = pd.read_csv(wiki)
    assert len(stored) == 12154
    goog = stored[stored["symbol"] == "GOOG"]["volume"].to_numpy()
    assert np.array_equal(
        goog, expected[expected["symbol"] == "GOOG"]["volume"].to_numpy(dtype=float)
    )
    assert physically_ordered(db)


def test_ingest_when_file_repeats_stored_rows_then_identical_rows_skipped(tmp_path: Path) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    source = SHARED_DATA / "btcusd_monthly_2012_2024.csv"
    ingest(str(source), str(db))
    lines = source.read_text().splitlines()
    copy = tmp_path / "btc_tail_plus_one.csv"
    copy.write_text("\n".join([*lines, "BTCUSD,2025-01-31T00:00:00,100,110,90,105,1"]) + "\n")
    # Act
    result, _ = ingest(str(copy), str(db))
    # Assert
    assert (result.rows_new, result.rows_identical) == (1, 156)
    assert db_state(db)[:2] == (2, 157)


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


GOOD = (
    HEADER + "AAA,2024-01-02T00:00:00,10,11,9,10.5,100\nAAA,2024-01-03T00:00:00,10,11,9,10.5,100\n"
)

# (case, files to create {name: content}, source pattern, expected stderr fragment)
BAD_INPUTS = [
    (
        "values",
        {
            "bad.csv": HEADER
            + "AAA,2024-01-05T00:00:00,10,11,9,10.5,100\nAAA,2024-01-06T00:00:00,abc,11,9,10.5,100\n"
            "AAA,2024-01-07T00:00:00,10,8,9,10.5,100\nAAA,2024-01-08T00:00:00,10,11,9,10.5,-1\n"
        },
        "bad.csv",
        "error: 3 invalid value(s) in bad.csv; nothing was written. Fix the rows below (first 3 of 3) and run again:\n"
        "  bad.csv line 3: column open: check not a number: value 'abc'\n"
        "  bad.csv line 4: column open,high,low,close: check high must be >= max(open, close, low): value open=10.0, high=8.0, low=9.0, close=10.5\n"
        "  bad.csv line 5: column volume: check greater_than_or_equal_to(0): value -1.0\n",
    ),
    ("missing_file", {}, "nope.csv", "error: source file '{dir}/nope.csv' not found"),
    ("empty_glob", {}, "*.parquet", "error: source='{dir}/*.parquet' matches no file"),
    (
        "garbage_bytes",
        {"junk.csv": bytes(range(256)) * 8},
        "junk.csv",
        "error: {dir}/junk.csv: not UTF-8 text (byte 0x80 on line 2)",
    ),
    (
        "bad_encoding",
        {
            "latin.csv": HEADER.encode()
            + "AAA,2024-01-05,10,11,9,10.5,100\nÄÖ,2024-01-05,10,11,9,10.5,1\n".encode("latin-1")
        },
        "latin.csv",
        "error: {dir}/latin.csv: not UTF-8 text (byte 0xc4 on line 3)",
    ),
    (
        "empty_file",
        {"empty.csv": ""},
        "empty.csv",
        "error: {dir}/empty.csv: the file is empty (no header line)",
    ),
    (
        "missing_column",
        {"cols.csv": "symbol,ts,open,high,low,close\nAAA,2024-01-05,10,11,9,10.5\n"},
        "cols.csv",
        "error: {dir}/cols.csv: missing column(s) volume (found: symbol, ts, open, high, low, close)",
    ),
    (
        "field_count",
        {"fields.csv": HEADER + "AAA,2024-01-05,10,11,9,10.5,100,7\n"},
        "fields.csv",
        "error: {dir}/fields.csv: malformed CSV: Expected 7 columns, got 8: AAA,2024-01-05,10,11,9,10.5,100,7 on line 2",
    ),
    (
        "unparsable_ts",
        {"ts.csv": HEADER + "AAA,05/01/2024,10,11,9,10.5,100\n"},
        "ts.csv",
        "  ts.csv line 2: column ts: check unparsable timestamp (write ISO-8601, e.g. 2024-01-31T09:30:00): value '05/01/2024'",
    ),
    (
        "text_in_number",
        {"num.csv": HEADER + "AAA,2024-01-05,10,11,9,ten,100\n"},
        "num.csv",
        "  num.csv line 2: column close: check not a number: value 'ten'",
    ),
    (
        "mixed_time_zones",
        {
            "tz.csv": HEADER
            + "AAA,2024-01-05T00:00:00Z,10,11,9,10.5,1\nAAA,2024-01-06T00:00:00,10,11,9,10.5,1\nAAA,2024-01-07T00:00:00+01:00,10,11,9,10.5,1\n"
        },
        "tz.csv",
        "  tz.csv line 3: column ts: check mixed time zones: some stamps carry a UTC offset and others do not; use one convention: value '2024-01-06T00:00:00'",
    ),
    (
        "duplicate_in_file",
        {"dup.csv": HEADER + "AAA,2024-01-05,10,11,9,10.5,1\nAAA,2024-01-05,10,11,9,10.5,2\n"},
        "dup.csv",
        "  dup.csv line 3: column symbol,ts: check (symbol, ts) must be unique: value symbol=AAA, ts=2024-01-05T00:00:00+00:00",
    ),
    (
        "duplicate_across_files",
        {
            "a1.csv": HEADER + "BBB,2024-01-05,10,11,9,10.5,1\n",
            "a2.csv": HEADER + "BBB,2024-01-05,10,11,9,10.5,2\n",
        },
        "a*.csv",
        "  a1.csv line 2: column symbol,ts: check (symbol, ts) also in another input file (a2.csv): value symbol=BBB, ts=2024-01-05T00:00:00+00:00",
    ),
    (
        "conflict_with_db",
        {"clash.csv": HEADER + "AAA,2024-01-02T00:00:00,10,11,9,10.5,999\n"},
        "clash.csv",
        "error: clash.csv: 1 bar(s) conflict with bars already in the market DB (same symbol and ts, different values), the first is AAA at 2024-01-02T00:00:00+00:00 (volume 100.0 in DB vs 999.0 in input)",
    ),
]


@pytest.mark.parametrize(
    ("case", "files", "source", "expected"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_ingest_cli_when_bad_input_then_exit_2_clear_message_and_db_unchanged(
    case: str,
    files: dict[str, str | bytes],
    source: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Arrange: a DB that already holds two good bars
    db = tmp_path / "m.duckdb"
    ingest(str(_write(tmp_path / "good.csv.in", GOOD).rename(tmp_path / "good.csv")), str(db))
    before = db_state(db)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, content in files.items():
        _write(inputs / name, content)
    capsys.readouterr()
    # Act
    code = run_main(ingest_cli.main, [f"source={inputs / source}", f"db.path={db}"], monkeypatch)
    err = capsys.readouterr().err
    # Assert
    assert code == 2
    assert expected.format(dir=inputs) in err, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert db_state(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "good.csv",
        "in",
        "m.duckdb",
        "m.duckdb.lock",
    ]


def test_ingest_cli_when_bad_rows_then_subprocess_exit_2_without_traceback(tmp_path: Path) -> None:
    # Arrange
    bad = _write(
        tmp_path / "bad.csv",
        HEADER + "AAA,2024-01-05,10,11,9,10.5,100\nAAA,2024-01-06,10,11,9,0,100\n",
    )
    db = tmp_path / "m.duckdb"
    # Act
    proc = run_module("producers.ingest", [f"source={bad}", f"db.path={db}"])
    # Assert
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        proc.stderr.splitlines()[0]
        == "error: 2 invalid value(s) in bad.csv; nothing was written. Fix the rows below (first 2 of 2) and run again:"
    )
    assert "Traceback" not in proc.stderr and not db.exists()


def test_ingest_when_many_bad_rows_then_first_20_listed_with_total(tmp_path: Path) -> None:
    # Arrange
    rows = "".join(f"AAA,2024-01-{d:02d}T00:00:00,10,11,9,10.5,-{d}\n" for d in range(1, 31))
    source = _write(tmp_path / "neg.csv", HEADER + rows)
    # Act
    with pytest.raises(DataValidationError) as caught:
        ingest(str(source), str(tmp_path / "m.duckdb"))
    # Assert
    lines = caught.value.report.splitlines()
    assert caught.value.n_failures == 30 and len(lines) == 21
    assert (
        lines[0] == "  neg.csv line 2: column volume: check greater_than_or_equal_to(0): value -1.0"
    )
    assert lines[-1] == "  ... and 10 more (30 failures in all)"


def test_ingest_when_naive_local_tz_then_stored_in_utc(tmp_path: Path) -> None:
    # Arrange: 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer
    source = _write(
        tmp_path / "fesx.csv",
        HEADER + "FESX,2024-01-15T09:00:00,10,11,9,10,1\nFESX,2024-07-15T09:00:00,10,11,9,10,1\n",
    )
    db = tmp_path / "m.duckdb"
    # Act
    ingest(str(source), str(db), tz="Europe/Berlin")
    # Assert
    assert list(read_bars(db)["ts"].dt.strftime("%Y-%m-%dT%H:%M")) == [
        "2024-01-15T08:00",
        "2024-07-15T07:00",
    ]


def test_ingest_when_parquet_without_symbol_column_then_symbol_option_used(tmp_path: Path) -> None:
    # Arrange
    bars = (
        generate_bars(5, n_symbols=1, n_bars=500)
        .drop(columns="symbol")
        .rename(columns={"ts": "Date"})
    )
    source = tmp_path / "one.parquet"
    bars.to_parquet(source)
    db = tmp_path / "m.duckdb"
    # Act
    result, _ = ingest(str(source), str(db), symbol="ONE")
    # Assert
    stored = read_bars(db)
    assert result.rows_new == len(bars) == len(stored) and set(stored["symbol"]) == {"ONE"}
    assert np.array_equal(stored["close"].to_numpy(), bars["close"].to_numpy())


# ---------------------------------------------------------------------------- analytics


def _reference_snapshots(bars: pd.DataFrame, cadence: str, lookback: int) -> pd.DataFrame:
    """Compute snapshots the slow, obvious way (pandas) for a small input."""
    width = pd.Timedelta(cadence)
    bars = bars.sort_values(["symbol", "ts"]).copy()
    bars["bucket"] = bars["ts"].dt.floor(width)
    rows = []
    for _, in_bucket in bars.groupby("bucket"):
        snapshot_ts = in_bucket["ts"].max()
        for symbol in sorted(in_bucket["symbol"].unique()):
            history = bars[
                (bars["symbol"] == symbol)
                & (bars["ts"] <= in_bucket[in_bucket["symbol"] == symbol]["ts"].max())
            ]
            if len(history) <= lookback:
                continue
            close = history["close"].to_numpy()
            log_returns = np.diff(np.log(close[-lookback - 1 :]))
            rows.append(
                (
                    snapshot_ts,
                    symbol,
                    close[-1] / close[-1 - lookback] - 1,
                    float(np.std(log_returns, ddof=1)),
                )
            )
    out = pd.DataFrame(rows, columns=["snapshot_ts", "symbol", "trailing_return", "volatility"])
    out["return_rank"] = (
        out.sort_values(["snapshot_ts", "trailing_return", "symbol"], ascending=[True, False, True])
        .groupby("snapshot_ts")
        .cumcount()
        .astype(float)
        + 1
    )
    return out.sort_values(["snapshot_ts", "symbol"]).reset_index(drop=True)


def test_analytics_when_computed_then_matches_reference_definition(tmp_path: Path) -> None:
    # Arrange
    bars = generate_bars(4, n_symbols=4, n_bars=1500, gap_rate=0.02)
    db = tmp_path / "m.duckdb"
    write_bars(db, bars, "bars")
    # Act
    result = run_analytics(db, AnalyticsConfig(cadence="2h", lookback=15))
    # Assert
    stored = read_snapshots(db)
    expected = _reference_snapshots(bars, "2h", 15)
    assert result.published and result.rows == len(expected)
    pd.testing.assert_frame_equal(
        stored.drop(columns="snapshot_ts"),
        expected.drop(columns="snapshot_ts"),
        rtol=1e-9,
        atol=1e-12,
    )
    assert list(stored["snapshot_ts"].dt.tz_convert("UTC")) == list(expected["snapshot_ts"])


def test_analytics_when_future_bars_appended_then_existing_snapshots_unchanged(
    tmp_path: Path,
) -> None:
    """Causality: a snapshot depends only on bars with ts <= snapshot_ts, bit for bit."""
    # Arrange: first 3 days of minute bars, then 2 more days appended
    bars = generate_bars(9, n_symbols=5, n_bars=5 * 1440, stagger=0.3, gap_rate=0.01)
    cut = pd.Timestamp("2024-01-04", tz="UTC")
    db = tmp_path / "m.duckdb"
    write_bars(db, bars[bars["ts"] < cut], "days 1-3")
    config = AnalyticsConfig(cadence="1h", lookback=30)
    run_analytics(db, config)
    before = read_snapshots(db)
    # Act
    write_bars(db, bars[bars["ts"] >= cut], "days 4-5")
    run_analytics(db, config)
    after = read_snapshots(db)
    # Assert
    assert len(after) > len(before) > 100
    kept = after[after["snapshot_ts"] <= before["snapshot_ts"].max()].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before, check_exact=True)


def test_analytics_when_history_truncated_at_snapshot_then_snapshot_identical() -> None:
    """The snapshot at S computed from all bars equals the one computed from bars with ts <= S."""
    # Arrange
    bars = generate_bars(5, n_symbols=6, n_bars=4000, gap_rate=0.01)
    config = AnalyticsConfig(cadence="30min", lookback=20)

    def snapshots(frame: pd.DataFrame) -> pd.DataFrame:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        con.register("frame", frame)
        con.execute("CREATE TABLE bars AS SELECT * FROM frame")
        return con.execute(snapshot_sql(config)).df()

    full = snapshots(bars)
    for snapshot_ts in full["snapshot_ts"].unique()[[10, 40, 80]]:
        # Act
        truncated = snapshots(bars[bars["ts"] <= snapshot_ts])
        # Assert
        pd.testing.assert_frame_equal(
            truncated[truncated["snapshot_ts"] == snapshot_ts].reset_index(drop=True),
            full[full["snapshot_ts"] == snapshot_ts].reset_index(drop=True),
            check_exact=True,
        )


def test_analytics_when_run_twice_then_second_is_noop(tmp_path: Path) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    write_bars(db, generate_bars(3, n_symbols=3, n_bars=3000), "bars")
    run_analytics(db, AnalyticsConfig())
    state = db_state(db)
    # Act
    second = run_analytics(db, AnalyticsConfig())
    # Assert
    assert not second.published and db_state(db) == state


def test_analytics_when_lookback_exceeds_history_then_data_range_error(tmp_path: Path) -> None:
    db = tmp_path / "m.duckdb"
    write_bars(db, generate_bars(3, n_symbols=2, n_bars=50), "bars")
    with pytest.raises(
        DataRangeError,
        match=r"^no symbol has 101 bars, so no snapshot can be computed; lower analytics\.lookback \(was 100\) or ingest more bars\.$",
    ):
        run_analytics(db, AnalyticsConfig(lookback=100))


def test_analytics_cli_when_cadence_invalid_then_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_main(
        analytics_cli.main,
        [f"db.path={tmp_path / 'm.duckdb'}", "analytics.cadence=3 months"],
        monkeypatch,
    )
    err = capsys.readouterr().err
    assert code == 2 and err == (
        "error: analytics.cadence must be a positive count with a unit s, min, h, d or w, was '3 months'; "
        "try analytics.cadence=1d or analytics.cadence=30min\n"
    )


# ---------------------------------------------------------------------------- publish

READER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
def state():
    version = con.execute("SELECT value FROM meta WHERE key = 'content_version'").fetchall()[0][0]
    count, total = con.execute("SELECT count(*), sum(close) FROM bars").fetchall()[0]
    return f"{version} {count} {total!r}"
print(state(), flush=True)
sys.stdin.readline()
print(state(), flush=True)
"""


def test_publish_when_reader_holds_live_file_then_producer_succeeds_and_reader_keeps_old_version(
    tmp_path: Path,
) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    bars = generate_bars(6, n_symbols=3, n_bars=2000)
    write_bars(db, bars[bars["ts"] < bars["ts"].iloc[len(bars) // 2]], "first half")
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None
        seen_before = reader.stdout.readline().strip()
        # Act: publish while the reader has the file open
        result = write_bars(db, bars[bars["ts"] >= bars["ts"].iloc[len(bars) // 2]], "second half")
        seen_after, _ = reader.communicate("go\n", timeout=30)
    finally:
        reader.kill()
    # Assert
    assert result.published and result.content_version == 2
    assert seen_before.split()[:2] == [
        "1",
        str((bars["ts"] < bars["ts"].iloc[len(bars) // 2]).sum()),
    ]
    assert seen_after.strip() == seen_before  # same version, same rows, same values
    assert db_state(db)[:2] == (2, len(bars))


WRITER = """
import sys, time
from producers.publish import publish
def apply(con):
    start = time.time()
    time.sleep(0.5)
    con.execute("INSERT INTO meta VALUES (?, 'x')", [sys.argv[2]])
    return start, time.time()
start, end = publish(sys.argv[1], apply, 30)
print(start, end, flush=True)
"""


def test_publish_when_two_producers_at_once_then_serialised_and_both_changes_kept(
    tmp_path: Path,
) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    # Act
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), f"writer_{k}"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    # Assert
    assert all(p.returncode == 0 for p in procs), outputs
    (_, e1), (s2, _) = sorted(tuple(map(float, out.split())) for out, _ in outputs)
    assert e1 <= s2  # the second apply started after the first one finished
    con = duckdb.connect(str(db), read_only=True)
    keys = {k for (k,) in con.execute("SELECT key FROM meta").fetchall()}
    assert content_version(con) == 2 and {"writer_0", "writer_1"} <= keys  # no lost update
    con.close()


HOLDER = """
import sys
from pathlib import Path
from producers.publish import PublishLock
with PublishLock(Path(sys.argv[1]), 5):
    print("ready", flush=True)
    sys.stdin.readline()
"""


def test_publish_when_lock_held_too_long_then_timeout_names_lock_pid_and_fix(
    tmp_path: Path,
) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        expected = (
            rf"^publish lock {re.escape(str(lock_path(db)))} is still held by PID {holder.pid} after 0\.3 s: "
            r"another producer is writing this market DB\. Wait for it to finish \(or stop that process\) and "
            r"run again, or wait longer with publish\.lock_timeout_s=<seconds>\.$"
        )
        # Act / Assert
        with pytest.raises(PublishLockTimeoutError, match=expected):
            publish(db, lambda con: None, lock_timeout_s=0.3)
    finally:
        holder.communicate("\n", timeout=30)
    assert not db.exists()


def test_publish_when_apply_raises_then_live_file_untouched_and_staging_removed(
    tmp_path: Path,
) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    write_bars(db, generate_bars(1, n_symbols=2, n_bars=100), "bars")
    before = db_state(db)

    def apply(con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DELETE FROM bars")
        raise RuntimeError("boom")

    # Act
    with pytest.raises(RuntimeError, match=r"^boom$"):
        publish(db, apply)
    # Assert
    assert db_state(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.duckdb", "m.duckdb.lock"]


def test_publish_when_apply_reports_unchanged_then_nothing_published(tmp_path: Path) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    write_bars(db, generate_bars(1, n_symbols=2, n_bars=100), "bars")
    before = db_state(db)
    # Act
    value = publish(db, lambda con: Unchanged("same"))
    # Assert
    assert value == "same" and db_state(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.duckdb", "m.duckdb.lock"]


def test_publish_when_older_bars_added_later_then_bars_stay_physically_ordered(
    tmp_path: Path,
) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    bars = generate_bars(2, n_symbols=3, n_bars=3000)
    late = bars["ts"] >= bars["ts"].iloc[len(bars) // 2]
    write_bars(db, bars[late], "newer half first")
    # Act
    write_bars(db, bars[~late], "older half second")
    # Assert
    assert physically_ordered(db)
    pd.testing.assert_frame_equal(
        read_bars(db).assign(ts=lambda d: d["ts"].dt.tz_convert("UTC")), bars, check_dtype=False
    )


def test_publish_when_stale_staging_file_left_then_removed_on_next_publish(tmp_path: Path) -> None:
    # Arrange
    db = tmp_path / "m.duckdb"
    (tmp_path / "m.duckdb.staging-99999").write_bytes(b"half-written")
    # Act
    write_bars(db, generate_bars(1, n_symbols=1, n_bars=50), "bars")
    # Assert
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.duckdb", "m.duckdb.lock"]


def test_ingest_cli_when_header_has_bare_carriage_return_then_exit_2_one_line_issue6(
    tmp_path: Path,
) -> None:
    """Regression (found by the ingest fuzz test): csv.Error on the header used to escape as a traceback."""
    from tests.helpers import run_cli

    source = tmp_path / "bad.csv"
    source.write_bytes(
        b"sym\rbol,ts,open,high,low,close,volume\nGOOG,2004-08-19T00:00:00,100,104,96,100.3,1\n"
    )
    db = tmp_path / "m.duckdb"
    proc = run_cli("producers.ingest", [f"source={source}", f"db.path={db}"])
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {source}: malformed CSV header line (new-line character seen in unquoted field - do you need "
        "to open the file in universal-newline mode?); expected the header symbol,ts,open,high,low,close,volume."
    )
    assert not db.exists()


# ---------------------------------------------------------------------------- stop signals


def _wait_for_open_file(pid: int, path: Path, timeout_s: float = 60.0) -> None:
    """Block until process ``pid`` holds ``path`` open (it is then inside PublishLock)."""
    import time

    deadline = time.monotonic() + timeout_s
    fd_dir = Path(f"/proc/{pid}/fd")
    while time.monotonic() < deadline:
        try:
            if any(os.path.realpath(fd) == str(path) for fd in fd_dir.iterdir()):
                return
        except (FileNotFoundError, PermissionError):
            pass
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never opened {path}")


@pytest.mark.parametrize("signum, code", [(15, 143), (1, 129), (2, 130)])
def test_ingest_when_stopped_by_a_signal_while_waiting_to_publish_then_one_line_and_db_unchanged(
    tmp_path: Path, signum: int, code: int
) -> None:
    import signal as signals

    from producers.publish import PublishLock

    db = tmp_path / "market.duckdb"
    source = SHARED_DATA / "goog_daily_2004_2013.csv"
    assert run_module("producers.ingest", [f"source={source}", f"db.path={db}"]).returncode == 0
    before = db_state(db)
    new = tmp_path / "more.csv"
    new.write_text(source.read_text().replace("GOOG,", "GOOX,"))  # a new symbol: new bars
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    with PublishLock(db, timeout_s=5):  # the producer waits for this lock, inside publish()
        proc = subprocess.Popen(
            [sys.executable, "-m", "producers.ingest", f"source={new}", f"db.path={db}",
             "publish.lock_timeout_s=120"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            _wait_for_open_file(proc.pid, lock_path(db).resolve())
            proc.send_signal(signals.Signals(signum))
            _, stderr = proc.communicate(timeout=60)
        finally:
            proc.kill()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == code, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    name = {15: "SIGTERM", 1: "SIGHUP", 2: "Ctrl-C"}[signum]
    assert lines[0].startswith(f"error: stopped by {name}; nothing was published"), lines
    assert db_state(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["market.duckdb", "market.duckdb.lock", "more.csv"]
    )


def test_producer_interrupted_when_a_version_was_already_published_then_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop signal after the atomic swap must not claim that nothing was published."""
    import producers.publish as publish_module
    from producers.common import producer_interrupted

    monkeypatch.setattr(publish_module, "PUBLISHED", [])
    assert producer_interrupted().startswith("nothing was published")
    db = tmp_path / "market.duckdb"
    publish(db, lambda con: None)
    assert [Path(p).resolve() for p in publish_module.PUBLISHED] == [db.resolve()]
    assert producer_interrupted().startswith(f"{publish_module.PUBLISHED[0]} was already published")
