"""Per-process state that the jobs of one sweep share: the open market DB and the code version.

A sequential multirun (basic or batched launcher) and a reused joblib/loky worker run many jobs
in one process. Every job used to open the market DB, count its universe and read its bars
again; here the read-only connection is opened once per (file, content) and kept until the
sweep ends (``release``), so later jobs plan from the same connection and the bar cache
(``components.market.cache``) can replay the bars. A file replaced by a producer (new inode,
size or mtime) gets a new connection, so a job never reads a stale version.

Single runs never use this: they open and close their own connection as before, so a test or a
script can write the market DB again right after an in-process run.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import time
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from components.data.duckdb_client import get_connection
from components.data.market_db import content_version
from components.execution.records import (
    DIGEST_TABLES,
    RUNS_SCHEMA,
    TABLES,
    arrow_schema,
    results_ddl,
)
from components.execution.write_buffer import (
    RESULTS_DIR,
    RUNS_FILE,
    WriteBuffer,
    open_results,
    part_name,
    to_arrow,
)
from components.market import cache as bar_cache
from components.results import runs

_CONNECTIONS: dict[tuple[Any, ...], duckdb.DuckDBPyConnection] = {}
_PLANS: dict[tuple[Any, ...], Any] = {}
_VERSIONS: dict[int, tuple[duckdb.DuckDBPyConnection, int]] = {}  # id(connection) -> version
CODE_PACKAGES = ("runner", "components")  # their source files make the code version


def db_identity(path: str | Path) -> tuple[Any, ...]:
    """Return (resolved path, device, inode, size, mtime): changes whenever the file is replaced."""
    resolved = Path(path).resolve()
    st = resolved.stat()
    return (str(resolved), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def market_connection(path: str | Path) -> duckdb.DuckDBPyConnection:
    """Return this process's read-only connection to ``path``, opening it on first use."""
    try:
        key = db_identity(path)
    except OSError:  # missing file: let get_connection raise its one-line error
        return get_connection(path, read_only=True)
    con = _CONNECTIONS.get(key)
    if con is None:
        _close_other_versions(key[0])
        con = get_connection(path, read_only=True)
        _CONNECTIONS[key] = con
    return con


def market_version(path: str | Path) -> tuple[duckdb.DuckDBPyConnection, int]:
    """Return this process's connection to ``path`` and the DB's content version (read once).

    The version is kept with the connection: a producer that writes the file changes its
    identity (size, mtime), and the next job opens a new connection and reads it again.
    """
    con = market_connection(path)
    version = _VERSIONS.get(id(con))
    if version is None or version[0] is not con:
        version = _VERSIONS[id(con)] = (con, content_version(con))
    return con, version[1]


def _close_other_versions(resolved: str) -> None:
    for key in [k for k in _CONNECTIONS if k[0] == resolved]:
        con = _CONNECTIONS.pop(key)
        _VERSIONS.pop(id(con), None)
        con.close()
        for plan_key in [p for p in _PLANS if p[0] == key]:
            del _PLANS[plan_key]


def cached_plan(key: tuple[Any, ...], make: Any) -> Any:
    """Return ``make()`` once per ``key`` (db identity, content version, universe request)."""
    if key not in _PLANS:
        _PLANS[key] = make()
    return _PLANS[key]


_TEMPLATE: dict[str, Path] = {}
_UNSYNCED: dict[str, bool] = {}  # set once this process wrote a sweep job's files without fsync
_HOST: dict[str, Any] = {}  # this process's in-memory DuckDB that attaches each job's results DB


# A job's results DB holds a few thousand rows in ~10 tables: with DuckDB's default 256 KB blocks
# each table's columns took blocks of their own (2.1 MB per job, mostly zeros, written at every
# detach); 16 KB blocks make it ~190 KB and the checkpoint at detach ~40 % cheaper. The block size
# is stored in the file's header: any DuckDB >= 1.2 opens it like any other results DB.
RESULTS_BLOCK_SIZE = 16384


def copy_results_template(path: Path) -> None:
    """Copy an empty results DB (every table, no rows) to ``path``; built once per process.

    Creating a DuckDB file and its tables costs ~40-120 ms (file header writes, DDL, checkpoint
    at close); copying a 28 KB file is a fraction of that.
    """
    template = _TEMPLATE.get("path")
    if template is None or not template.exists():
        template = Path(tempfile.mkdtemp(prefix="runner_results_")) / "template.duckdb"
        host = _results_host()
        quoted = str(template).replace("'", "''")
        host.execute(f"ATTACH '{quoted}' AS results_template (BLOCK_SIZE {RESULTS_BLOCK_SIZE})")
        try:
            con = host.cursor()
            con.execute("USE results_template")
            con.execute(results_ddl())
            con.close()
        finally:
            host.execute("DETACH results_template")
        _TEMPLATE["path"] = template
    shutil.copyfile(template, path)


def _results_host() -> duckdb.DuckDBPyConnection:
    host = _HOST.get("con")
    if host is None:
        host = duckdb.connect(":memory:")
        # as WriteBuffer.open: checkpoint when the job's file is detached, not mid-run
        host.execute("SET wal_autocheckpoint = '1GB'")
        # a job's statements touch a few thousand rows: one thread does them with less CPU than
        # a pool of two (and the forked workers of a sweep already use every core)
        host.execute("SET threads = 1")
        # no fsync per commit and per detach (two to three per job, ~4 ms): a sweep job's files
        # are made durable by one os.sync() when the sweep ends (``sync_sweep_files``), and a
        # job cut short before then is rerun by resume (its summary.json is not a complete run's)
        host.execute("SET fsync_mode = 'NONE'")
        _HOST.update(con=host, n=0)
    return host


class AttachedWriteBuffer(WriteBuffer):
    """A ``WriteBuffer`` whose results.duckdb is attached to one DuckDB instance per process.

    ``duckdb.connect`` on a file starts a whole database instance (buffer manager, thread pool,
    catalog): ~25-35 ms per job even on a copied template. Here each job's file is a copy of the
    empty template, ``ATTACH``-ed to this process's in-memory instance (~3 ms) and used through a
    cursor whose default catalog is that file, so every statement of the run (the ``runs`` row,
    the flushes, the digest check of a test) reads and writes the job's own results.duckdb, as
    with its own connection. ``close`` detaches it, which checkpoints the file: afterwards it is
    an ordinary results DB that any process can open. Same tables, rows and digest.
    """

    alias: str | None = None
    # set by ``defer_commits``: the end-of-run flush waits for ``commit`` (one transaction for
    # the last rows and the ``runs`` row); a batch that fills up mid-run still commits at once
    deferred: bool = False

    def __init__(self, batch_size: int, background: bool = False) -> None:
        super().__init__(batch_size, background=False)
        self._statements: list[tuple[str, list[Any]]] = []
        self._digested = dict.fromkeys(TABLES, 0)  # leading pending rows already converted
        # the Arrow tables of those rows: the digest, the INSERT and the kept equity all read
        # them, so each row is converted from its tuple once (it was twice, ~2 ms a job)
        self._arrow: dict[str, list[pa.Table]] = {name: [] for name in TABLES}
        # (ts us, equity) of every equity row converted so far, one pair per conversion: the
        # statistics read the run's equity from here, not back from results.duckdb
        self.kept_equity: list[tuple[np.ndarray, np.ndarray]] = []

    def _digest_pending(self) -> None:
        """Convert the pending rows not converted yet; fold those of digest tables into the digest.

        They are committed later, from the same Arrow tables.
        """
        for name, rows in self.pending.items():
            done = self._digested[name]
            if len(rows) <= done:
                continue
            table = to_arrow(name, rows[done:] if done else rows)
            self._arrow[name].append(table)
            self._digested[name] = len(rows)
            if name in DIGEST_TABLES:
                self.digest.update_table(name, table)
            elif name == "equity":
                ts = table.column("ts").to_numpy().view(np.int64)
                self.kept_equity.append((ts, table.column("equity").to_numpy()))

    def _pending_arrow(self) -> dict[str, pa.Table]:
        """Return the pending rows as one Arrow table per non-empty table (converted once)."""
        out = {}
        for name, parts in self._arrow.items():
            if parts:
                out[name] = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        return out

    def _release_pending(self) -> int:
        self._digested = dict.fromkeys(TABLES, 0)
        for parts in self._arrow.values():
            parts.clear()
        return super()._release_pending()

    def defer_commits(self) -> None:
        """Commit rows only when a batch fills up or ``commit`` is called (multirun jobs)."""
        self.deferred = True

    def execute_with_next_commit(self, sql: str, params: list[Any]) -> None:
        """Run ``sql`` inside the next transaction this buffer commits, before its rows."""
        self._statements.append((sql, params))

    def commit_in_place_of_queued(
        self, replacement: tuple[str, list[Any]], otherwise: tuple[str, list[Any]]
    ) -> int:
        """Commit with ``replacement`` instead of the queued statements if no batch has taken
        them yet (the usual case: one commit per job), else with ``otherwise`` after them.
        """
        if self._statements:
            self._statements = [replacement]
            return self.commit()
        return self.commit(otherwise)

    def flush(self) -> int:
        """As ``WriteBuffer.flush``; when deferred, a batch that is not full is only digested.

        The digest then covers every row emitted so far, as after a commit, and the rows stay
        pending until ``commit``.
        """
        if self.deferred and self.n_pending < self.batch_size:
            self._digest_pending()
            return 0
        return self.commit()

    def commit(self, *statements: tuple[str, list[Any]]) -> int:
        """Commit the pending rows, the queued statements and ``statements`` in one transaction."""
        self._statements.extend(statements)
        self._digest_pending()
        if self.con is None or not (self.n_pending or self._statements):
            return 0
        # the rows are digested above (``flush`` may digest without committing): not again here
        self._commit(
            self.con,
            self.pending,
            self.n_pending,
            self._statements,
            digest=False,
            batches=self._pending_arrow(),
        )
        self._statements.clear()
        if self.n_pending:
            self.flushes += 1
        return self._release_pending()

    def record_run_start(self, run_row: tuple[Any, ...], started_us: int) -> None:
        """Queue the ``runs`` row: it goes in with the first commit (usually the run's last)."""
        self.deferred = True
        self.execute_with_next_commit(*runs.started(*run_row))

    def end_loop(
        self,
        run_row: tuple[Any, ...],
        started_us: int,
        status: str,
        digest: str,
        stopped_at_us: int | None,
    ) -> None:
        """The last rows, the ``runs`` row and ``status``: one transaction."""
        self.commit_in_place_of_queued(
            runs.started_and_ended(*run_row, started_us, status, digest, stopped_at_us),
            runs.loop_end(run_row[0], status, digest, stopped_at_us),
        )

    def flush_after_failure(self) -> None:
        self.commit()  # also the runs row still queued, so it can be marked failed

    def open(self, path: Path) -> duckdb.DuckDBPyConnection:
        copy_results_template(path)
        host = _results_host()
        _HOST["n"] += 1
        alias = f"job_results_{_HOST['n']}"
        quoted = str(path).replace("'", "''")
        host.execute(f"ATTACH '{quoted}' AS {alias}")
        self.path, self.alias = path, alias
        con = host.cursor()
        try:
            con.execute(f"USE {alias}")
            con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error:
            con.close()
            host.execute(f"DETACH {alias}")
            raise
        self.con = con
        return con

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        if self.alias is not None:
            _HOST["con"].execute(f"DETACH {self.alias}")
            self.alias = None


class ParquetWriteBuffer(AttachedWriteBuffer):
    """A multirun job's results as Parquet files in ``<run dir>/results/`` (no DuckDB file).

    Each committed batch writes one file per non-empty table, ``<table>-<part>.parquet``
    (temporary name, then rename: a reader never sees half a file); ``runs.parquet`` is written
    last, once every output file of the run is in place, with the run's final status. A job cut
    short leaves whole batches and no ``runs.parquet``. The rows, their order, the digest and the
    kept equity are those of ``AttachedWriteBuffer`` (the same pending-row handling); what goes
    is the per-job DuckDB database: template copy, attach, one INSERT per table (~0.5 ms each
    whatever the row count), commit and the checkpoint at detach, ~10 ms a job against ~2 ms
    for the Parquet files. ``components.execution.write_buffer.open_results`` reads either
    layout with the same SQL; one glob reads a whole sweep::

        SELECT * FROM read_parquet('multirun/<sweep>/*/results/trades-*.parquet', filename=true)
    """

    results_name = RESULTS_DIR

    def __init__(self, batch_size: int) -> None:
        super().__init__(batch_size)
        self.deferred = True
        self._part = 0
        self._stored: set[str] = set()  # tables with at least one file
        self._run: dict[str, Any] = {}

    def open(self, path: Path) -> None:  # type: ignore[override]
        path.mkdir(parents=True, exist_ok=False)
        self.path = path
        return None

    def commit(self, *statements: tuple[str, list[Any]]) -> int:
        """Write the pending rows, one Parquet file per non-empty table."""
        assert not statements and not self._statements, "a Parquet results dir runs no SQL"
        self._digest_pending()
        if not self.n_pending or self.path is None:
            return 0
        for name, table in self._pending_arrow().items():
            self._write(part_name(name, self._part), table)
            self._stored.add(name)
        self._part += 1
        self.flushes += 1
        return self._release_pending()

    def _write(self, name: str, table: pa.Table | bytes) -> None:
        assert self.path is not None
        target = self.path / name
        tmp = target.with_name(name + ".tmp")
        try:
            if isinstance(table, bytes):
                tmp.write_bytes(table)
            else:  # a job's small files are read whole: no column statistics, no dictionary
                # pages (~30 % cheaper to write; snappy still packs repeated symbols)
                pq.write_table(
                    table, tmp, compression="snappy", write_statistics=False, use_dictionary=False
                )
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            rows = 0 if isinstance(table, bytes) else table.num_rows
            raise self._flush_error(rows, exc) from exc

    def record_run_start(self, run_row: tuple[Any, ...], started_us: int) -> None:
        run_id, config_hash, market_db, version = run_row
        self._run = {
            "run_id": run_id,
            "status": runs.RUNNING,
            "started_at": started_us,
            "ended_at": None,
            "config_hash": config_hash,
            "market_db": market_db,
            "market_db_version": version,
            "digest": None,
            "stopped_at_ts": None,
            "message": None,
        }

    def end_loop(
        self,
        run_row: tuple[Any, ...],
        started_us: int,
        status: str,
        digest: str,
        stopped_at_us: int | None,
    ) -> None:
        self.commit()
        self._run.update(
            status=status, digest=digest, stopped_at_ts=stopped_at_us, ended_at=_now_us()
        )

    def record_status(self, run_id: str, status: str) -> None:
        self._run["status"] = status
        self._write_runs_file()

    def flush_after_failure(self) -> None:
        self.commit()

    def record_failure(self, run_id: str, stopped_at_us: int | None, exc: BaseException) -> None:
        self._run.update(
            status=runs.FAILED,
            ended_at=_now_us(),
            stopped_at_ts=stopped_at_us,
            message=f"{type(exc).__name__}: {exc}"[:500],
        )
        self._write_runs_file()

    def _write_runs_file(self) -> None:
        """Write an empty file for every table without one, then ``runs.parquet`` (last)."""
        if self.path is None or not self._run:
            return
        for name in TABLES:
            if name not in self._stored:
                self._write(part_name(name, 0), _empty_parquet(name))
                self._stored.add(name)
        row = {key: [value] for key, value in self._run.items()}
        self._write(RUNS_FILE, pa.Table.from_pydict(row, schema=RUNS_SCHEMA))

    def reader(self) -> duckdb.DuckDBPyConnection | None:
        return open_results(self.path.parent) if self.path is not None else None

    def close(self) -> None:
        """Nothing is open: every file was written whole."""


@cache
def _empty_parquet(table: str) -> bytes:
    """Return the bytes of an empty Parquet file of ``table`` (the same for every job)."""
    sink = pa.BufferOutputStream()
    pq.write_table(arrow_schema(table).empty_table(), sink, compression="snappy")
    return sink.getvalue().to_pybytes()


def _now_us() -> int:
    return time.time_ns() // 1000


def sweep_buffer(buffer: WriteBuffer) -> WriteBuffer:
    """Return the buffer a multirun job writes through, in place of a plain ``WriteBuffer``.

    ``buffer.sweep_format``: ``parquet`` (default) a ``ParquetWriteBuffer``, ``duckdb`` an
    ``AttachedWriteBuffer`` (a results.duckdb per job, as a single run). Either flushes
    synchronously whatever ``buffer.background`` says (a performance key): a sweep job's rows
    mostly fit one batch, written at the end of the run anyway.

    Every multirun job passes here: its process then owes the ``os.sync()`` of
    ``sync_sweep_files`` (its files are written without fsync, whatever the buffer).
    """
    _UNSYNCED["files"] = True
    if type(buffer) is not WriteBuffer:
        return buffer
    if buffer.sweep_format == "duckdb":
        return AttachedWriteBuffer(buffer.batch_size)
    return ParquetWriteBuffer(buffer.batch_size)


def sync_sweep_files() -> None:
    """Flush every file the sweep's jobs wrote without fsync to disk: one ``os.sync()``.

    Multirun jobs skip the per-file fsync of single runs (``runner.outputs.atomic_write``, the
    results host's ``fsync_mode``); the sweep process calls this before its report, and a job
    process of a cluster launcher (one job per process) at exit. Forked workers' writes sit in
    the same page cache, so the parent's call covers them.
    """
    _UNSYNCED.clear()
    os.sync()


def release(*, sync: bool = False) -> None:
    """Close every cached connection and drop cached plans and bars (end of a sweep, tests).

    Then ``sync_sweep_files`` when this process ran a multirun job (a job process of a cluster
    launcher, at exit) or ``sync`` asks for it (the sweep process: its forked workers wrote too).
    """
    for con in _CONNECTIONS.values():
        with contextlib.suppress(duckdb.Error):
            con.close()
    _CONNECTIONS.clear()
    _PLANS.clear()
    _VERSIONS.clear()
    bar_cache.clear()
    host = _HOST.pop("con", None)
    if host is not None:
        with contextlib.suppress(duckdb.Error):
            host.close()
    template = _TEMPLATE.pop("path", None)
    if template is not None:
        shutil.rmtree(template.parent, ignore_errors=True)
    if sync or _UNSYNCED:
        sync_sweep_files()
    from runner.engine import unfreeze_after_sweep  # (runner.engine imports no runner module)

    unfreeze_after_sweep()


@lru_cache(maxsize=1)
def code_version() -> str:
    """Return a hash of every source file of the runner and its components, and loaded plugins.

    A job is reused only when the code that would run it is the code that ran it; a hash of the
    sources works without git and on a cluster node that has only a copy of the tree.
    """
    root = Path(__file__).resolve().parents[1]
    files = sorted(p for pkg in CODE_PACKAGES for p in (root / pkg).rglob("*.py"))
    files += sorted(_plugin_files())
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _plugin_files() -> list[Path]:
    names = [n.strip() for n in os.environ.get("RUNNER_PLUGINS", "").split(",") if n.strip()]
    files = []
    for name in names:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            files.append(Path(module.__file__).resolve())
    return files


atexit.register(release)
