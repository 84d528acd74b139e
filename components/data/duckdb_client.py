"""DuckDB client: ``get_connection`` and ``db_cursor``, read-only by default (STYLE P6).

DuckDB enforces the mode itself; this module only maps DuckDB's failures to exceptions whose
message names the file and the fix.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from components.errors import (
    ConfigError,
    DbCorruptError,
    DbLockedError,
    DbModeConflictError,
    DbNotAFileError,
    DbUnreadableError,
    MarketDbMissingError,
    ReadOnlyViolationError,
    UserFacingError,
)

CREATE_HINT = "python -m producers.demo db.path={path}` (synthetic) or `python -m producers.ingest source=<file> db.path={path}"

_STATEMENT = re.compile(r'statement of type "(\w+)"')
_PID = re.compile(r"\(PID (\d+)\)")
_CORRUPT = re.compile(
    r"Corrupt (database|WAL) file|checksum[^.:]* does not match|Could not read enough bytes"
)
DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file


def _body(exc: BaseException, path: Path) -> str:
    """Return the exception's message with every spelling of ``path`` blanked out.

    A path can contain any word ("corrupt", "read-only", "Is a directory"), so errors are
    classified by the exception type and the rest of DuckDB's message, never by the path.
    """
    text = str(exc)
    spellings = {str(path), str(path.expanduser()), str(path.expanduser().absolute())}
    with contextlib.suppress(OSError, RuntimeError):
        spellings.add(str(path.expanduser().resolve()))
    for spelling in sorted(spellings, key=len, reverse=True):
        if spelling:
            text = text.replace(spelling, "<file>")
    return text


def translate_error(
    exc: BaseException, path: Path, read_only: bool | None = None
) -> UserFacingError | None:
    """Return the user-facing error for a DuckDB exception about ``path``, or None if unknown."""
    text = _body(exc, path)
    if "read-only mode" in text and isinstance(exc, duckdb.Error) and "in-memory" not in text:
        match = _STATEMENT.search(text)
        stmt = match.group(1) if match else "write"
        return ReadOnlyViolationError(
            f"refused a {stmt} statement on {path}: the connection is read-only (the runner never "
            "writes the market DB); write it with a producer CLI such as "
            f"`python -m producers.ingest source=<file> db.path={path}`."
        )
    if "Could not set lock" in text or "Conflicting lock" in text:
        match = _PID.search(text)
        pid = match.group(1) if match else "unknown"
        return DbLockedError(
            f"{path} (db.path) is locked by another process (PID {pid}) that has it open for writing; "
            f"DuckDB admits readers only when no writer is open, so wait for PID {pid} to finish or stop it, "
            "then retry."
            if read_only
            else f"{path} (db.path) is locked by another process (PID {pid}); wait for it to finish or stop it, "
            "then retry."
        )
    if "different configuration than existing connections" in text:
        return DbModeConflictError(
            f"{path} is already open in this process with a different read_only setting; close the "
            "other connection first (DuckDB cannot open one file twice in different modes)."
        )
    if isinstance(exc, duckdb.IOException | PermissionError) and "Permission denied" in text:
        return DbUnreadableError(
            f"{path} (db.path) cannot be opened: permission denied; give your user read access "
            f"(e.g. `chmod u+r {path}`) or point db.path at a copy you can read."
        )
    if isinstance(exc, duckdb.IOException) and "Is a directory" in text:
        return DbNotAFileError(_not_a_file_message(path, "a directory"))
    if "not a valid DuckDB database" in text or "Cannot launch in-memory database" in text:
        return DbCorruptError(not_duckdb_message(path))
    if _CORRUPT.search(text) and isinstance(exc, duckdb.Error):
        return DbCorruptError(not_duckdb_message(path))
    return None


def _not_a_file_message(path: Path, what: str) -> str:
    return (
        f"db.path={path} is {what}, not a DuckDB database file; point db.path at a .duckdb file, "
        f"e.g. db.path=outputs/market/demo.duckdb (create one with `{CREATE_HINT.format(path='<file>')}`)."
    )


def not_duckdb_message(path: Path) -> str:
    kind = _sniff(path)
    if kind in ("CSV", "Parquet"):
        return (
            f"{path} is not a readable DuckDB database (it is a {kind} file); ingest it into a market DB "
            f"with `python -m producers.ingest source={path} db.path=outputs/market/<name>.duckdb` and "
            "point db.path at that file."
        )
    return (
        f"{path} is not a readable DuckDB database (truncated, damaged or another file type); "
        f"rebuild it with `{CREATE_HINT.format(path=path)}`."
    )


def _sniff(path: Path) -> str:
    """Return what the file at ``path`` looks like: DuckDB, Parquet, CSV, empty or other."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError:
        return "other"
    if not head:
        return "empty"
    if head[8:12] == DUCKDB_MAGIC:
        return "DuckDB"
    if head[:4] == b"PAR1":
        return "Parquet"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "other"
    return "CSV" if text.isprintable() or "\n" in text else "other"


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_db_file(path: str | Path, *, must_exist: bool = True) -> Path:
    """Return ``path`` (``~`` expanded) after checking it can be a DuckDB database file.

    Refuse, before DuckDB opens it: an empty ``db.path``; anything that is not a regular file
    (``open()`` on a FIFO blocks forever and ignores Ctrl-C); and an existing regular file that
    is not a DuckDB database (a CSV, a Parquet or an empty file).
    """
    if not str(path).strip():
        raise ConfigError(
            "db.path is empty; give the market DB file, e.g. db.path=outputs/market/demo.duckdb"
        )
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if must_exist:
            raise MarketDbMissingError(
                f"market DB not found at {path} (db.path); create it first with "
                f"`{CREATE_HINT.format(path=path)}`."
            ) from None
        return path
    except PermissionError:
        raise DbUnreadableError(
            f"{path} (db.path) cannot be opened: permission denied on a directory above it; "
            "give your user access or point db.path elsewhere."
        ) from None
    for test, what in _KINDS:
        if test(mode):
            raise DbNotAFileError(_not_a_file_message(path, what))
    if not os.access(path, os.R_OK):
        raise DbUnreadableError(
            f"{path} (db.path) cannot be opened: permission denied; give your user read access "
            f"(e.g. `chmod u+r {path}`) or point db.path at a copy you can read."
        )
    if _sniff(path) != "DuckDB":
        raise DbCorruptError(not_duckdb_message(path))
    return path


def get_connection(path: str | Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open ``path`` and return the connection; read-only unless a producer asks for writes.

    Raises
    ------
    MarketDbMissingError
        ``read_only`` and the file does not exist (a read-only open would otherwise fail obscurely).
    DbNotAFileError, DbCorruptError, ConfigError
        ``path`` is empty, not a regular file, or a file that is not a DuckDB database.
    DbLockedError, DbModeConflictError, DbCorruptError
        DuckDB refused to open the file.
    """
    path = check_db_file(path, must_exist=read_only)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        translated = translate_error(exc, path, read_only)
        if translated is not None:
            raise translated from exc
        raise


@contextmanager
def db_cursor(path: str | Path, *, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield a connection that is closed on exit; DuckDB errors inside become user-facing errors."""
    con = get_connection(path, read_only=read_only)
    try:
        yield con
    except duckdb.Error as exc:
        translated = translate_error(exc, Path(path), read_only)
        if translated is not None:
            raise translated from exc
        raise
    finally:
        con.close()
