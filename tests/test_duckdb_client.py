"""DuckDB client: read-only by default, and every DuckDB refusal becomes a message a user can act on."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from components.data.duckdb_client import db_cursor, get_connection
from components.data.market_db import ensure_schema
from components.errors import (
    DbCorruptError,
    DbLockedError,
    DbModeConflictError,
    MarketDbMissingError,
    ReadOnlyViolationError,
)


def _small_db(path: Path) -> Path:
    con = duckdb.connect(str(path))
    ensure_schema(con)
    con.execute(
        "INSERT INTO bars VALUES ('AAA', TIMESTAMPTZ '2024-01-02 00:00:00+00', 10, 11, 9, 10.5, 100)"
    )
    con.close()
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_get_connection_when_db_missing_then_market_db_missing_error_names_path_and_fix(
    tmp_path: Path,
) -> None:
    # Arrange
    path = tmp_path / "absent.duckdb"
    expected = (
        rf"^market DB not found at {re.escape(str(path))} \(db\.path\); create it first with "
        rf"`python -m producers\.demo db\.path={re.escape(str(path))}` \(synthetic\) or "
        rf"`python -m producers\.ingest source=<file> db\.path={re.escape(str(path))}`\.$"
    )
    # Act / Assert
    with pytest.raises(MarketDbMissingError, match=expected):
        get_connection(path)
    assert not path.exists()


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        (
            "INSERT INTO bars VALUES ('BBB', TIMESTAMPTZ '2024-01-02 00:00:00+00', 1, 1, 1, 1, 1)",
            "INSERT",
        ),
        ("UPDATE bars SET close = 1", "UPDATE"),
        ("DELETE FROM bars", "DELETE"),
        ("CREATE TABLE extra (x INTEGER)", "CREATE"),
        ("DROP TABLE bars", "DROP"),
    ],
)
def test_db_cursor_when_write_on_read_only_then_read_only_violation_and_file_unchanged(
    tmp_path: Path, statement: str, kind: str
) -> None:
    # Arrange
    path = _small_db(tmp_path / "m.duckdb")
    before = _digest(path)
    # Act
    with pytest.raises(ReadOnlyViolationError) as caught, db_cursor(path) as con:
        con.execute(statement)
    # Assert
    assert re.match(
        rf"^refused a {kind} statement on {re.escape(str(path))}: the connection is read-only \(the "
        r"runner never writes the market DB\); write it with a producer CLI such as "
        rf"`python -m producers\.ingest source=<file> db\.path={re.escape(str(path))}`\.$",
        str(caught.value),
    )
    assert _digest(path) == before
    assert not Path(f"{path}.wal").exists()


def test_get_connection_when_other_process_holds_write_lock_then_db_locked_error_names_pid(
    tmp_path: Path,
) -> None:
    # Arrange
    path = _small_db(tmp_path / "m.duckdb")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb,sys; c=duckdb.connect({str(path)!r}); print('ready', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        # Act / Assert
        with pytest.raises(
            DbLockedError,
            match=rf"^{re.escape(str(path))} \(db.path\) is locked by another process \(PID {holder.pid}\) that has it open for writing; ",
        ):
            get_connection(path, read_only=True)
    finally:
        holder.communicate("", timeout=30)


def test_get_connection_when_same_file_open_in_other_mode_then_mode_conflict_error(
    tmp_path: Path,
) -> None:
    # Arrange
    path = _small_db(tmp_path / "m.duckdb")
    reader = get_connection(path, read_only=True)
    try:
        # Act / Assert
        with pytest.raises(
            DbModeConflictError,
            match=rf"^{re.escape(str(path))} is already open in this process with a different read_only setting",
        ):
            get_connection(path, read_only=False)
    finally:
        reader.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_get_connection_when_file_damaged_then_db_corrupt_error_with_rebuild_hint(
    tmp_path: Path, damage: str
) -> None:
    # Arrange
    path = tmp_path / "m.duckdb"
    if damage == "garbage":
        path.write_bytes(os.urandom(20_000))
    elif damage == "truncated":
        data = _small_db(tmp_path / "good.duckdb").read_bytes()
        path.write_bytes(data[: len(data) // 3])
    else:
        path.write_bytes(b"")
    # Act / Assert
    with pytest.raises(
        DbCorruptError,
        match=rf"^{re.escape(str(path))} is not a readable DuckDB database .* rebuild it with `python -m producers\.demo",
    ):
        get_connection(path, read_only=True)
