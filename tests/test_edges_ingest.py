"""Ingest edges (issue 14, item 20): suspected unadjusted splits warn, a ';'- or tab-separated file
is named with the ``sep=`` to pass, and an unnamed first column of dates is ``ts``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from loguru import logger

from producers.ingest import ingest
from tests.helpers import REPO, SHARED_DATA

GOOG = SHARED_DATA / "goog_daily_2004_2013.csv"
WIKI = SHARED_DATA / "wiki_stocks_daily_2000_2013.csv"
BACKTESTING_GOOG = SHARED_DATA / "raw" / "backtesting_py" / "GOOG.csv"


def _separated(tmp_path: Path, sep: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(GOOG.read_text().replace(",", sep))
    return path


def test_ingest_cli_when_file_is_semicolon_or_tab_separated_then_names_sep_issue14_item20(
    tmp_path: Path,
) -> None:
    # Arrange
    cases = {
        "';'": _separated(tmp_path, ";", "semi.csv"),
        "tab": _separated(tmp_path, "\t", "tab.csv"),
    }
    header = "symbol{s}ts{s}open{s}high{s}low{s}close{s}volume"
    # Act: both CLIs at once
    procs = {
        shown: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "producers.ingest",
                f"source={path}",
                f"db.path={tmp_path / 'x.duckdb'}",
            ],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for shown, path in cases.items()
    }
    results = {
        shown: (proc.communicate(timeout=120), proc.returncode) for shown, proc in procs.items()
    }
    # Assert
    for shown, ((_out, err), code) in results.items():
        sep = ";" if shown == "';'" else "\\t"
        expected = (
            f"error: {cases[shown]}: looks {shown}-separated (header '{header.format(s=sep)}'); pass "
            f"sep={shown}, e.g. `python -m producers.ingest source={cases[shown]} sep={shown} db.path=<db>`."
        )
        assert code == 2 and err.rstrip("\n") == expected, err
    assert not (tmp_path / "x.duckdb").exists()


@pytest.mark.parametrize(("sep", "name"), [(";", "';'"), ("\t", "tab"), ("|", "pipe")])
def test_ingest_when_sep_given_then_reads_the_file_issue14_item20(
    tmp_path: Path, sep: str, name: str
) -> None:
    source = _separated(tmp_path, sep, "bars.csv")
    result, _plan = ingest(str(source), str(tmp_path / "m.duckdb"), sep=name.strip("'"))
    assert result.rows_new == 2148


def test_ingest_when_first_column_unnamed_then_it_is_ts_issue14_item20(tmp_path: Path) -> None:
    """backtesting.py's own GOOG.csv: ``,Open,High,Low,Close,Volume`` with dates in the first column."""
    assert BACKTESTING_GOOG.read_text().startswith(",Open,High,Low,Close,Volume\n")
    db = tmp_path / "m.duckdb"
    result, _plan = ingest(str(BACKTESTING_GOOG), str(db), symbol="GOOG")
    con = duckdb.connect(str(db), read_only=True)
    first = con.execute("SELECT min(ts)::DATE, count(*) FROM bars").fetchone()
    con.close()
    assert result.rows_new == 2148 and str(first[0]) == "2004-08-19"


def test_ingest_when_prices_not_split_adjusted_then_warns_but_writes_issue14_item20(
    tmp_path: Path,
) -> None:
    # Arrange
    messages: list[str] = []
    logger.add(lambda m: messages.append(str(m.record["message"])), level="WARNING")
    # Act
    result, _plan = ingest(str(WIKI), str(tmp_path / "m.duckdb"))
    # Assert: published anyway, and AAPL's 2-for-1 of 2000-06-21 (101.25 -> 50.5) is named
    assert result.published
    aapl = [
        m
        for m in messages
        if re.match(r"^wiki_stocks_daily_2000_2013\.csv: AAPL opens at 50\.5 on 2000-06-21", m)
    ]
    assert aapl == [
        "wiki_stocks_daily_2000_2013.csv: AAPL opens at 50.5 on 2000-06-21 after a close of 101.25 "
        "(-50 %): this looks like an unadjusted 2-for-1 split, and a backtest would trade through it; "
        "use split-adjusted prices unless the move is real."
    ]


def test_ingest_when_prices_adjusted_then_no_split_warning_issue14_item20(tmp_path: Path) -> None:
    messages: list[str] = []
    logger.add(lambda m: messages.append(str(m.record["message"])), level="WARNING")
    ingest(str(GOOG), str(tmp_path / "m.duckdb"))
    assert not [m for m in messages if "split" in m]
