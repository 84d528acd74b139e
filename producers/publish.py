"""Atomic publish of a new market-DB version (DESIGN section 2).

Every producer writes through ``publish``: under an exclusive lock on ``<db>.lock`` it copies the
live file to ``<db>.staging-<pid>``, applies its change there inside one transaction, bumps the
content version, keeps ``bars`` physically ordered by (ts, symbol), checkpoints, fsyncs, and
swaps the staging file in with ``os.replace``. A backtest that already opened the live file keeps
reading the old inode, so it sees one consistent version from start to end.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import duckdb
from loguru import logger

from components.data.duckdb_client import (
    check_db_file,
    get_connection,
    not_duckdb_message,
    translate_error,
)
from components.data.market_db import bump_content_version, ensure_schema
from components.errors import DbCorruptError, PublishLockTimeoutError

T = TypeVar("T")

POLL_S = 0.05  # how often a waiting producer retries the lock
PUBLISHED: list[Path] = []  # the live files this process has published, in order (CLI messages)


@dataclass(frozen=True)
class Unchanged(Generic[T]):
    """Returned by an ``apply`` function that found nothing to change: nothing is published."""

    value: T


@dataclass
class PublishConfig:
    lock_timeout_s: float = 60.0  # seconds to wait for another producer's publish lock

    def __post_init__(self) -> None:
        if self.lock_timeout_s < 0:
            raise ValueError(
                f"publish.lock_timeout_s must be >= 0 seconds, was {self.lock_timeout_s}; "
                "try publish.lock_timeout_s=60"
            )


def lock_path(db_path: Path) -> Path:
    """Return the lock file that serialises producers of ``db_path``."""
    return db_path.with_name(db_path.name + ".lock")


def staging_path(db_path: Path, pid: int | None = None) -> Path:
    """Return the staging file a producer with ``pid`` builds the next version in."""
    return db_path.with_name(f"{db_path.name}.staging-{os.getpid() if pid is None else pid}")


class PublishLock:
    """Exclusive ``flock`` on ``<db>.lock`` with a bounded, polling wait; records the holder's PID."""

    def __init__(self, db_path: Path, timeout_s: float) -> None:
        self.path = lock_path(db_path)
        self.timeout_s = timeout_s
        self._fd: int | None = None

    def __enter__(self) -> PublishLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise self._timeout_error(holder) from None
                time.sleep(POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _timeout_error(self, holder: str) -> PublishLockTimeoutError:
        who = f"PID {holder}" if holder else "another process (PID not recorded)"
        return PublishLockTimeoutError(
            f"publish lock {self.path} is still held by {who} after {self.timeout_s:g} s: another "
            "producer is writing this market DB. Wait for it to finish (or stop that process) and "
            "run again, or wait longer with publish.lock_timeout_s=<seconds>."
        )


def _read_holder(fd: int) -> str:
    text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    return text if text.isdigit() else ""


def publish(
    db_path: str | Path,
    apply: Callable[[duckdb.DuckDBPyConnection], T | Unchanged[T]],
    lock_timeout_s: float = 60.0,
) -> T:
    """Apply a change to a copy of the market DB and swap it in atomically; return apply's result.

    ``apply(con)`` runs inside one transaction on the staging copy, after the content version
    was bumped (so ``content_version(con)`` inside ``apply`` is the version being written).
    Returning ``Unchanged(value)`` rolls back and publishes nothing; ``value`` is returned.
    Any exception rolls back, deletes the staging file and propagates; the live file is untouched.

    Raises
    ------
    PublishLockTimeoutError
        Another producer held ``<db>.lock`` longer than ``lock_timeout_s``.
    """
    live = check_db_file(db_path, must_exist=False)  # a FIFO would hang copyfile; a CSV is refused
    with PublishLock(live, lock_timeout_s):
        _remove_stale_staging(live)
        staging = staging_path(live)
        try:
            result = _build_staging(live, staging, apply)
        except DbCorruptError:  # the staging file is a byte copy: the damage is the live file's
            _remove(staging)
            raise DbCorruptError(not_duckdb_message(live)) from None
        except duckdb.Error as exc:
            _remove(staging)
            translated = translate_error(exc, live)
            if translated is None:
                raise
            raise (
                DbCorruptError(not_duckdb_message(live))
                if isinstance(translated, DbCorruptError)
                else translated
            ) from None
        except BaseException:
            _remove(staging)
            raise
        if isinstance(result, Unchanged):
            _remove(staging)
            return result.value
        _fsync(staging)
        with _stop_signals_held():  # a stop signal lands before the swap or after it is recorded
            os.replace(staging, live)
            PUBLISHED.append(live)
        _fsync(live.parent)
        logger.debug("published {}", live)
        return result


def _build_staging(
    live: Path, staging: Path, apply: Callable[[duckdb.DuckDBPyConnection], T | Unchanged[T]]
) -> T | Unchanged[T]:
    """Copy ``live`` to ``staging`` and apply the change there; return apply's result."""
    if live.exists():
        _checkpoint_leftover_wal(live)
        shutil.copyfile(live, staging)
    con = get_connection(staging, read_only=False)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            ensure_schema(con)
            bump_content_version(con)
            last_rowid = _max_rowid(con)
            result = apply(con)
            if isinstance(result, Unchanged):
                con.execute("ROLLBACK")
                return result
            order_bars(con, since_rowid=last_rowid)
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return result


@contextlib.contextmanager
def _stop_signals_held() -> Iterator[None]:
    """Hold SIGINT / SIGTERM / SIGHUP (main thread) so the swap and its record are one step."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    main = threading.current_thread() is threading.main_thread()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back if a transaction is still open (a failed COMMIT may already have ended it)."""
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def _max_rowid(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT coalesce(max(rowid), -1) FROM bars").fetchall()[0][0])


def order_bars(con: duckdb.DuckDBPyConnection, since_rowid: int = -1) -> bool:
    """Rewrite ``bars`` in (ts, symbol) order when rows are out of that order; return True if so.

    The runner's chunked reader scans ts ranges, and DuckDB skips row groups by their ts min/max
    (zonemaps) only when the table is physically ordered by ts. Rows up to ``since_rowid`` are
    known to be ordered (deletes and updates keep the order), so only the rows appended after
    it, and the last older row before them, are checked.
    """
    if _max_rowid(con) <= since_rowid:
        return False  # nothing appended
    unordered = con.execute(
        """
        SELECT count(*) FROM (
            SELECT ts, symbol, lag(ts) OVER w AS prev_ts, lag(symbol) OVER w AS prev_symbol
            FROM bars WHERE rowid >= (SELECT coalesce(max(rowid), -1) FROM bars WHERE rowid <= $since)
            WINDOW w AS (ORDER BY rowid)
        ) WHERE prev_ts IS NOT NULL AND (ts < prev_ts OR (ts = prev_ts AND symbol <= prev_symbol))
        """,
        {"since": since_rowid},
    ).fetchall()
    if not unordered[0][0]:
        return False
    con.execute("CREATE TEMP TABLE bars_sorted AS SELECT * FROM bars ORDER BY ts, symbol")
    con.execute("DROP TABLE bars")
    ensure_schema(con)  # recreates bars with its constraints
    con.execute("INSERT INTO bars SELECT * FROM bars_sorted ORDER BY ts, symbol")
    con.execute("DROP TABLE bars_sorted")
    return True


def _checkpoint_leftover_wal(live: Path) -> None:
    """Fold a write-ahead log left beside the live file (a write outside the producers) into it.

    Copying only the main file would silently drop the WAL's changes.
    """
    if not live.with_name(live.name + ".wal").exists():
        return
    logger.warning("{} has a leftover write-ahead log; checkpointing it before publishing", live)
    con = get_connection(live, read_only=False)
    try:
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _remove_stale_staging(live: Path) -> None:
    """Delete staging files of producers that died mid-publish (we hold the lock, so none is live)."""
    for path in live.parent.glob(f"{live.name}.staging-*"):
        logger.warning("removing stale staging file {} left by an interrupted producer", path)
        _remove(path)


def _remove(path: Path) -> None:
    for candidate in (path, path.with_name(path.name + ".wal")):
        candidate.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
