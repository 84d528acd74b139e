"""Fast, in-process checks of the issue 14 edges (the CLI-level proofs are in test_edges_cli.py,
which is slow: one subprocess per case)."""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path

import duckdb
import pytest
from omegaconf import OmegaConf

from components.cli import _group_override_error, describe_config_error, expand_home
from components.data.duckdb_client import check_db_file, translate_error
from components.errors import ConfigError, DbCorruptError, DbLockedError, DbNotAFileError
from components.registry import typed_config
from components.suggest import closest
from components.timestamps import parse_timestamp
from runner import rundir
from runner.config import RunConfig
from runner.plan import requested_symbols
from tests.helpers import compose_config, make_market_db, read_shared_csv


def test_check_db_file_when_not_a_regular_file_then_refused_without_opening_issue14_item1(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "p.duckdb"
    os.mkfifo(fifo)
    sock_path = tmp_path / "s.duckdb"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    for path, what in (
        (fifo, "a named pipe (FIFO)"),
        (sock_path, "a socket"),
        (Path("/dev/null"), "a character device"),
        (tmp_path, "a directory"),
    ):
        with pytest.raises(
            DbNotAFileError,
            match=rf"^db\.path={re.escape(str(path))} is {re.escape(what)}, not a DuckDB",
        ):
            check_db_file(path)
    sock.close()


def test_translate_error_when_path_says_corrupt_or_read_only_then_path_is_ignored_issue14_item10(
    tmp_path: Path,
) -> None:
    path = tmp_path / "corrupt read-only mode checksum does not match" / "m.duckdb"
    unrelated = duckdb.IOException(f'IO Error: Cannot open file "{path}": No such thing')
    assert translate_error(unrelated, path) is None
    damaged = duckdb.Error(
        "Corrupt database file: computed checksum 1 does not match stored checksum 2"
    )
    assert isinstance(translate_error(damaged, path), DbCorruptError)
    locked = duckdb.IOException(
        f'IO Error: Could not set lock on file "{path}": Conflicting lock (PID 7)'
    )
    assert isinstance(translate_error(locked, path), DbLockedError)


def test_check_db_file_when_csv_or_empty_then_not_duckdb_issue14_item11(tmp_path: Path) -> None:
    csv = tmp_path / "x.duckdb"
    csv.write_text("symbol,ts\nA,2024-01-01\n")
    empty = tmp_path / "e.duckdb"
    empty.write_bytes(b"")
    with pytest.raises(DbCorruptError, match=r"\(it is a CSV file\)"):
        check_db_file(csv)
    with pytest.raises(DbCorruptError, match=r"\(truncated, damaged or another file type\)"):
        check_db_file(empty)
    good = make_market_db(
        tmp_path / "g.duckdb", read_shared_csv("goog_daily_2004_2013.csv").head(3)
    )
    assert check_db_file(good) == good


@pytest.mark.parametrize(
    "value", ["01/02/2010", "13/02/2010", "2010/01/02", "-0.5", "20100102", "Jan 2 2010"]
)
def test_parse_timestamp_when_not_iso_8601_then_refused_issue14_item7(value: str) -> None:
    with pytest.raises(ConfigError, match=r"expected an ISO-8601 date or timestamp"):
        parse_timestamp(value, "start")


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2010-01-02", "2010-01-02T00:00:00+00:00"),
        ("2010-01-02T14:30", "2010-01-02T14:30:00+00:00"),
        ("2010-01-02 14:30:05.5+01:00", "2010-01-02T13:30:05.500000+00:00"),
        ("2010-01-02T00:00:00Z", "2010-01-02T00:00:00+00:00"),
    ],
)
def test_parse_timestamp_when_iso_8601_then_utc_issue14_item7(value: str, iso: str) -> None:
    assert parse_timestamp(value, "start").isoformat() == iso


def test_parse_timestamp_when_out_of_range_then_names_range_issue14_item14() -> None:
    with pytest.raises(ConfigError, match=r"^start=1677-09-21: outside the supported range"):
        parse_timestamp("1677-09-21", "start")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("GOOG", ("GOOG",)), (["B", "A", "A"], ("A", "B"))],
)
def test_requested_symbols_when_names_then_sorted_tuple_issue14_item14(
    value: object, expected: object
) -> None:
    assert requested_symbols(value) == expected


@pytest.mark.parametrize("value", [float("nan"), 1000, [], [1], [""], {"a": 1}])
def test_requested_symbols_when_not_names_then_config_error_issue14_item14(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^symbols"):
        requested_symbols(
            OmegaConf.create({"s": value}).s if isinstance(value, list | dict) else value
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("log_level", "FOO", r"run\.log_level must be one of"),
        ("log_level", "0", r"run\.log_level must be one of"),
        ("halt_file", "", r"run\.halt_file must be a file name"),
        ("halt_file", "../HALT", r"run\.halt_file must be a file name"),
        ("halt_file", ".", r"run\.halt_file must be a file name"),
    ],
)
def test_run_config_when_bad_value_then_value_error_issue14_items6_13(
    field: str, value: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RunConfig(**{field: value})
    assert RunConfig(log_level="debug").log_level == "debug"


def test_typed_config_when_kind_overridden_alone_then_says_select_the_option_issue14_item15() -> (
    None
):
    cfg = compose_config(["+experiment=backtest", "market.kind=direct"])
    with pytest.raises(
        ConfigError,
        match=r"Fix: select the option with market=direct instead of market\.kind=direct\.$",
    ):
        typed_config("market", cfg.market)


def test_closest_when_case_differs_then_exact_name_issue14_item16() -> None:
    assert closest("goog", ["AAPL", "GOOG"]) == "GOOG"
    assert closest("Chunked", ["chunked", "direct"]) == "chunked"
    assert closest("GOGG", ["AAPL", "GOOG"]) == "GOOG"
    assert closest("zzz", ["AAPL"]) is None


def test_group_override_error_when_value_not_a_name_then_names_options_issue14_item12(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["runner", "+experiment=backtest", "buffer=null"])
    try:
        compose_config(["+experiment=backtest", "buffer=null"])
    except Exception as exc:  # Hydra's own ValueError from deep in its defaults list
        assert describe_config_error(exc) is None
        message = _group_override_error(exc)
    else:
        raise AssertionError("Hydra accepted buffer=null")
    assert message == (
        "buffer=null: buffer is a config group and takes an option name, got null; options: duckdb, memory. "
        "Fix: buffer=duckdb (a key inside the group is set as buffer.<key>=<value>)."
    )


def test_expand_home_when_value_starts_with_tilde_then_expanded_issue14_item14(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", "/home/u")
    assert expand_home(["db.path=~/x.duckdb", "~market.chunk_size", "+a=~", "b=x~y"]) == [
        "db.path=/home/u/x.duckdb",
        "~market.chunk_size",
        "+a=/home/u",
        "b=x~y",
    ]


def test_remove_stub_when_dir_holds_results_or_existed_then_kept_issue14_item18(
    tmp_path: Path,
) -> None:
    # Arrange: three run dirs, as RunDirGuard would record them
    stub, kept, earlier = tmp_path / "a" / "b" / "stub", tmp_path / "kept", tmp_path / "earlier"
    earlier.mkdir()
    for run_dir in (stub, kept):
        rundir._created[run_dir] = rundir._topmost_missing(run_dir)  # type: ignore[assignment]
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "config.yaml").write_text("x")
        (run_dir / "runner.log").write_text("x")
    (kept / "results.duckdb").write_text("x")
    # Act
    rundir.remove_stub()
    # Assert: the stub and the parents it created are gone; results and pre-existing dirs stay
    assert not (tmp_path / "a").exists()
    assert (kept / "results.duckdb").exists() and earlier.exists()
    assert rundir._created == {}


def test_typed_configs_when_integer_beyond_64_bits_then_names_key_issue14_item12(
    tmp_path: Path,
) -> None:
    from runner.plan import typed_configs

    cfg = compose_config(
        ["+experiment=backtest", "execution.kill_switch.max_daily_trades=99999999999999999999"]
    )
    with pytest.raises(
        ConfigError,
        match=r"^execution\.kill_switch\.max_daily_trades=99999999999999999999: too large",
    ):
        typed_configs(cfg)


def test_publish_when_live_db_damaged_then_names_live_file_not_staging_issue14_item10(
    tmp_path: Path,
) -> None:
    from producers.publish import publish

    live = make_market_db(tmp_path / "m.duckdb", read_shared_csv("goog_daily_2004_2013.csv"))
    data = bytearray(live.read_bytes())
    data[12288 + 100 : 12288 + 200] = b"\xff" * 100  # inside the first data block
    live.write_bytes(bytes(data))
    with pytest.raises(
        DbCorruptError, match=rf"^{re.escape(str(live))} is not a readable DuckDB database"
    ):
        publish(live, lambda con: con.execute("SELECT sum(close) FROM bars").fetchall())
    assert not list(tmp_path.glob("*.staging-*"))
