"""DuckDB client: ``get_connection`` and ``db_cursor``, read-only by default (STYLE P6).

DuckDB enforces the mode itself; this module only maps DuckDB's failures to exceptions whose
message names the file and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from components.errors import (
    DbCorruptError,
    DbLockedError,
    DbModeConflictError,
    MarketDbMissingError,
    ReadOnlyViolationError,
    UserFacingError,
)

CREATE_HINT = "python -m producers.demo db.path={path}` (synthetic) or `python -m producers.ingest source=<file> db.path={path}"

_STATEMENT = re.compile(r'statement of type "(\w+)"')
_PID = re.compile(r"\(PID (\d+)\)")


def translate_error(
    exc: BaseException, path: Path, read_only: bool | None = None
) -> UserFacingError | None:
    """Return the user-facing error for a DuckDB exception about ``path``, or None if unknown."""
    text = str(exc)
    if "read-only mode" in text:
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
    if (
        "not a valid DuckDB database" in text
        or "Could not read enough bytes" in text
        or (
            isinstance(exc, duckdb.IOException)
            and ("corrupt" in text.lower() or "checksum" in text.lower())
        )
    ):
        return DbCorruptError(
            f"{path} is not a readable DuckDB database (truncated, damaged or another file type); "
            f"rebuild it with `{CREATE_HINT.format(path=path)}`."
        )
    return None


def get_connection(path: str | Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open ``path`` and return the connection; read-only unless a producer asks for writes.

    Raises
    ------
    MarketDbMissingError
        ``read_only`` and the file does not exist (a read-only open would otherwise fail obscurely).
    DbLockedError, DbModeConflictError, DbCorruptError
        DuckDB refused to open the file.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise MarketDbMissingError(
            f"market DB not found at {path} (db.path); create it first with `{CREATE_HINT.format(path=path)}`."
        )
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
