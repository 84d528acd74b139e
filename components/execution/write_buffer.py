"""WriteBuffer: batches records into the results DB (DESIGN section 7).

Flush when ``batch_size`` rows are pending, at shutdown, and synchronously when the loop raises.
One transaction per flush across all tables; rows leave the buffer only after COMMIT, so a failed
commit rolls back and keeps every row. The parity digest folds in each batch once it is committed,
batches in emission order, so it does not depend on the batch size; its lines are formatted by
Arrow (``row_repr``), off the GIL, from the same Arrow tables the INSERT reads.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from components.errors import UserFacingError
from components.execution.records import DIGEST_TABLES, TABLES, arrow_schema, results_ddl
from components.execution.row_repr import hash_table
from components.registry import register
from components.results import runs


class FlushError(UserFacingError, OSError):
    """A flush could not commit; the rows are still in memory."""

    exit_code = 1


SWEEP_FORMATS = ("parquet", "duckdb")


@dataclass
class DuckDbBufferConfig:
    kind: str = "duckdb"
    batch_size: int = 20000  # pending rows (all tables together) that trigger a flush
    background: bool = True  # batches that fill up mid-run are written by a writer thread
    # multirun jobs: results/<table>-<part>.parquet per job (one glob queries the whole sweep)
    # or a results.duckdb per job, as a single run writes
    sweep_format: str = "parquet"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(
                f"buffer.batch_size must be a positive number of rows, was {self.batch_size}; "
                "try buffer.batch_size=500"
            )
        if self.sweep_format not in SWEEP_FORMATS:
            raise ValueError(
                f"buffer.sweep_format must be one of {', '.join(SWEEP_FORMATS)}, was "
                f"{self.sweep_format!r}; try buffer.sweep_format=duckdb for a results.duckdb "
                "per multirun job"
            )


@dataclass
class MemoryBufferConfig:
    kind: str = "memory"
    batch_size: int = 20000  # kept for symmetry; the memory buffer only counts and digests rows


class Digest:
    """sha256 over each digest table's rows (``repr`` of the row tuple), combined in table order.

    ``update_table`` (the write buffer) and ``update_many`` (rows read back from a results DB)
    hash the same bytes for the same typed values.
    """

    def __init__(self) -> None:
        self._hashers = {name: hashlib.sha256() for name in DIGEST_TABLES}
        self.counts = dict.fromkeys(DIGEST_TABLES, 0)

    def update(self, table: str, row: tuple) -> None:
        self.update_many(table, [row])

    def update_many(self, table: str, rows: list[tuple]) -> None:
        """Hash rows in order; one call per batch equals one call per row (sha256 streams)."""
        hasher = self._hashers.get(table)
        if hasher is not None and rows:
            # tuple.__repr__: a record NamedTuple hashes like the plain tuple read back from the DB
            hasher.update(("\n".join(map(tuple.__repr__, rows)) + "\n").encode())
            self.counts[table] += len(rows)

    def update_table(self, table: str, rows: pa.Table) -> None:
        """Hash an Arrow batch of ``table`` in row order (``row_repr``: the GIL is released)."""
        hasher = self._hashers.get(table)
        if hasher is not None and rows.num_rows:
            hash_table(hasher, rows)
            self.counts[table] += rows.num_rows

    def hexdigest(self) -> str:
        combined = hashlib.sha256()
        for name in DIGEST_TABLES:
            combined.update(f"{name}:{self._hashers[name].hexdigest()}\n".encode())
        return combined.hexdigest()


def digest_of_results(con: duckdb.DuckDBPyConnection) -> str:
    """Recompute the parity digest from a results DB, proving what was persisted equals what ran."""
    digest = Digest()
    for name in DIGEST_TABLES:
        cols = ", ".join(
            f"epoch_us({col})" if sql == "TIMESTAMPTZ" else col for col, (sql, _) in TABLES[name]
        )
        for row in con.execute(f"SELECT {cols} FROM {name} ORDER BY seq").fetchall():
            digest.update(name, tuple(row))
    return digest.hexdigest()


RESULTS_DB = "results.duckdb"  # a run's results: this DuckDB file (single runs) ...
RESULTS_DIR = "results"  # ... or Parquet files here (multirun jobs, buffer.sweep_format=parquet)
RUNS_FILE = "runs.parquet"  # in RESULTS_DIR, written last: the run's row, its final status


def part_name(table: str, part: int) -> str:
    """Return the file name of one committed batch of ``table`` in a results dir."""
    return f"{table}-{part:04d}.parquet"


def open_results(run_dir: Path) -> duckdb.DuckDBPyConnection:
    """Return a read-only view of a run's results with the results DB's tables and ``runs``.

    A single run's ``results.duckdb`` is opened read-only; a multirun job's ``results/`` Parquet
    files are read through one view per table (``SELECT * FROM trades`` reads
    ``results/trades-*.parquet``), so the same SQL and ``digest_of_results`` work on either.
    """
    run_dir = Path(run_dir)
    if (run_dir / RESULTS_DB).exists():
        return duckdb.connect(str(run_dir / RESULTS_DB), read_only=True)
    folder = run_dir / RESULTS_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"{run_dir} holds neither {RESULTS_DB} nor {RESULTS_DIR}/")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(results_ddl())  # every table, empty: a job cut short may lack some files
    for name in ("runs", *TABLES):
        glob = RUNS_FILE if name == "runs" else f"{name}-*.parquet"
        if next(folder.glob(glob), None) is None:
            continue
        quoted = str(folder / glob).replace("'", "''")
        con.execute(f"DROP TABLE {name}")
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{quoted}')")
    return con


class WriteBuffer:
    """Buffer rows per table and write them to ``results.duckdb`` in one transaction per flush.

    With ``background``, a batch that fills up mid-run is handed to one writer thread (its own
    DuckDB cursor; DuckDB releases the GIL while it inserts and commits) and the loop goes on.
    At most one batch is in flight; it leaves memory only after its COMMIT. A failed commit is
    raised by the next ``flush`` with the batch's rows put back in front of the pending ones, so
    nothing is lost either way. ``flush()`` called from outside (end of run, the error path)
    always waits until everything is committed, so callers see the synchronous behaviour.
    """

    persistent = True
    sweep_format = "parquet"  # how a multirun job stores its rows (DuckDbBufferConfig)
    results_name = RESULTS_DB  # what ``open`` creates in the run dir

    def __init__(self, batch_size: int, background: bool = False) -> None:
        self.batch_size = batch_size
        self.background = background
        self._writer: ThreadPoolExecutor | None = None
        self._checkpointing: Future[Any] | None = None  # end_loop's CHECKPOINT on the writer
        self._writer_con: duckdb.DuckDBPyConnection | None = None
        self._in_flight: tuple[Future[None], dict[str, list[tuple]], int] | None = None
        self.pending: dict[str, list[tuple]] = {name: [] for name in TABLES}
        self.n_pending = 0
        self.rows_written = 0
        self.flushes = 0
        self.digest = Digest()
        self.con: duckdb.DuckDBPyConnection | None = None
        self.path: Path | None = None

    def open(self, path: Path) -> duckdb.DuckDBPyConnection:
        """Create the results DB at ``path`` (never an existing one) and return its connection."""
        self.path = path
        self.con = duckdb.connect(str(path))
        self.con.execute("SET TimeZone = 'UTC'")
        # checkpoint at close, not every 16 MB of WAL mid-run: committed rows are durable in the WAL either way
        self.con.execute("SET wal_autocheckpoint = '1GB'")
        # a batch's INSERTs are a few thousand rows: one thread does them with less CPU than a
        # pool, whose workers took cores from the loop (runner.app._run_loop sets the same)
        self.con.execute("SET threads = 1")
        self.con.execute(results_ddl())
        if self.background:
            self._writer_con = self.con.cursor()
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="results-writer")
        return self.con

    def add(self, table: str, row: tuple) -> None:
        """Queue one row; flush when ``batch_size`` rows are pending."""
        self.pending[table].append(row)
        self.n_pending += 1
        if self.n_pending >= self.batch_size:
            self._flush_full_batch()

    def add_many(self, table: str, rows: Sequence[tuple]) -> None:
        """Queue ``rows`` in order, exactly as ``add`` for each would: a batch still flushes
        when it reaches ``batch_size`` rows, never later (the engine's equity rows per chunk)."""
        pending, start, n = self.pending[table], 0, len(rows)
        while start < n:
            # at least one row, as ``add`` appends before it checks (rows put back by a failed
            # flush may hold the buffer at or above a batch already)
            take = min(n - start, max(1, self.batch_size - self.n_pending))
            pending.extend(rows[start : start + take])
            self.n_pending += take
            start += take
            if self.n_pending >= self.batch_size:
                self._flush_full_batch()
                pending = self.pending[table]  # a background flush hands the lists over

    def _flush_full_batch(self) -> None:
        """A batch is full: hand it to the writer thread, or commit it here without one."""
        if self._writer is not None:
            self._flush_in_background()
        else:
            self.flush()

    def queue(self, table: str, rows: Sequence[tuple]) -> None:
        """Queue ``rows`` without flushing, whatever the batch (an error is on its way: the
        failure path flushes every pending row, or keeps them when the disk refuses)."""
        self.pending[table].extend(rows)
        self.n_pending += len(rows)

    def flush(self) -> int:
        """Write every pending row in one transaction; clear the buffer only after COMMIT."""
        self._wait_checkpoint()
        self._wait_in_flight()
        if not self.n_pending or self.con is None:
            return 0
        self._commit(self.con, self.pending, self.n_pending)
        self.flushes += 1
        return self._release_pending()

    # The run's ``runs`` row (components.results.runs), kept where this buffer keeps its rows.
    # ``run_row`` is (run_id, config_hash, market_db, market_db_version); ``started_us`` the
    # run's start (epoch us). A buffer that stores nothing (``persistent`` False) records none.

    def record_run_start(self, run_row: tuple[Any, ...], started_us: int) -> None:
        """Insert the ``runs`` row as ``running`` before the loop."""
        if self.persistent and self.con is not None:
            self.con.execute(*runs.started(*run_row))

    def end_loop(
        self,
        run_row: tuple[Any, ...],
        started_us: int,
        status: str,
        digest: str,
        stopped_at_us: int | None,
    ) -> None:
        """Commit the last rows, then record the loop's end (``status``: ``reporting``)."""
        self.flush()
        if self.persistent and self.con is not None:
            self.con.execute(*runs.loop_end(run_row[0], status, digest, stopped_at_us))
            self._checkpoint_in_background()

    def _checkpoint_in_background(self) -> None:
        """Move the run's rows from the WAL into the file on the writer thread, now.

        Every row is committed (and durable in the WAL) once the loop has ended; the checkpoint
        that ``close`` would run (~50 ms for 1M bars' records) overlaps the report instead,
        which only reads (DuckDB serves reads during a checkpoint). Every later write
        (``record_status``, ``record_failure``, a flush) and ``close`` wait for it first; if it
        fails, the rows stay in the WAL and ``close`` checkpoints as it always did.
        """
        if self._writer is not None and self._writer_con is not None:
            self._checkpointing = self._writer.submit(self._writer_con.execute, "CHECKPOINT")

    def _wait_checkpoint(self) -> None:
        future, self._checkpointing = self._checkpointing, None
        if future is not None:
            with contextlib.suppress(duckdb.Error, OSError):
                future.result()

    def record_status(self, run_id: str, status: str) -> None:
        """Record the outcome once every output file is in place."""
        self._wait_checkpoint()
        if self.persistent and self.con is not None:
            self.con.execute(*runs.final_status(run_id, status))

    def flush_after_failure(self) -> None:
        """Commit what can be committed after the loop raised (``FlushError`` if it cannot)."""
        self.flush()

    def record_failure(self, run_id: str, stopped_at_us: int | None, exc: BaseException) -> None:
        """Mark the run failed with the error."""
        self._wait_checkpoint()
        if self.persistent and self.con is not None:
            self.con.execute(*runs.failed(run_id, stopped_at_us, exc))

    def reader(self) -> duckdb.DuckDBPyConnection | None:
        """Return a connection that reads this run's committed tables (None: nothing stored)."""
        return self.con if self.persistent else None

    def _commit(
        self,
        con: duckdb.DuckDBPyConnection,
        tables: dict[str, list[tuple]],
        n_rows: int,
        statements: Sequence[tuple[str, list[Any]]] = (),
        digest: bool = True,
        batches: dict[str, pa.Table] | None = None,
    ) -> None:
        """Insert ``tables`` in one transaction, ``statements`` first; then digest the rows.

        ``digest=False``: the caller folded these rows into the digest already (a sweep job's
        buffer digests its last rows at the end of the loop and commits them with its ``runs``
        row later, ``runner.job_cache.AttachedWriteBuffer``). ``batches``: the same rows already
        converted to Arrow, one table per non-empty table.
        """
        if batches is None:
            batches = {name: to_arrow(name, rows) for name, rows in tables.items() if rows}
        try:
            con.execute("BEGIN TRANSACTION")
            for sql, params in statements:
                con.execute(sql, params)
            for name, _wb_batch in batches.items():
                con.execute(f"INSERT INTO {name} SELECT * FROM _wb_batch")
            con.execute("COMMIT")
        except (duckdb.Error, OSError) as exc:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            raise self._flush_error(n_rows, exc) from exc
        if digest:
            for name, batch in batches.items():  # committed: batches reach the digest in order
                self.digest.update_table(name, batch)

    def _flush_error(self, n_rows: int, cause: BaseException) -> FlushError:
        return FlushError(
            f"could not commit {n_rows} buffered row(s) to {self.path} ({cause}); the rows "
            "are kept in memory and the run stops. Free disk space or fix permissions, then rerun."
        )

    def _flush_in_background(self) -> None:
        """Hand the pending rows to the writer thread (after the previous batch committed)."""
        self._wait_in_flight()
        assert self._writer is not None and self._writer_con is not None
        batch, n_rows = self.pending, self.n_pending
        self.pending = {name: [] for name in TABLES}
        self.n_pending = 0
        future = self._writer.submit(self._commit, self._writer_con, batch, n_rows)
        self._in_flight = (future, batch, n_rows)

    def _wait_in_flight(self) -> None:
        """Wait for the batch in flight; on failure put its rows back in front and raise."""
        if self._in_flight is None:
            return
        future, batch, n_rows = self._in_flight
        self._in_flight = None
        try:
            future.result()
        except FlushError as failed:
            for name, rows in batch.items():  # the failed batch precedes every pending row
                rows.extend(self.pending[name])
            self.pending, self.n_pending = batch, n_rows + self.n_pending
            cause = failed.__cause__ or failed
            raise self._flush_error(self.n_pending, cause) from cause
        self.flushes += 1
        self.rows_written += n_rows

    def _release_pending(self) -> int:
        """Drop the pending rows (after COMMIT, or after digesting them when nothing is stored)."""
        written = self.n_pending
        for rows in self.pending.values():
            rows.clear()
        self.rows_written += written
        self.n_pending = 0
        return written

    def close(self) -> None:
        self._wait_checkpoint()
        if self._writer is not None:
            with contextlib.suppress(FlushError):
                self._wait_in_flight()  # a failure was raised by the run's last flush already
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._writer_con is not None:
            self._writer_con.close()
            self._writer_con = None
        if self.con is not None:
            self.con.close()
            self.con = None


class MemoryBuffer(WriteBuffer):
    """Persistence off: count and digest rows, keep none (benchmarks compare against it)."""

    persistent = False

    def open(self, path: Path) -> None:  # type: ignore[override]
        self.path = path
        return None

    def flush(self) -> int:
        for name in DIGEST_TABLES:
            rows = self.pending[name]
            if rows:
                self.digest.update_table(name, to_arrow(name, rows))
        return self._release_pending()


def to_arrow(table: str, rows: list[tuple]) -> pa.Table:
    """Return ``rows`` of results table ``table`` as an Arrow table of its schema.

    Arrow converts the row tuples as one struct array, one C++ pass over the rows, and its
    fields become the columns without a copy. Transposing the rows in Python first (``zip``)
    then converting column by column took ~1.5x as long, on the writer thread, holding the GIL
    the loop needs.
    """
    schema, row_type = _arrow_types(table)
    batch = pa.RecordBatch.from_struct_array(pa.array(rows, type=row_type))
    return pa.Table.from_batches([batch], schema=schema)


@functools.cache
def _arrow_types(table: str) -> tuple[pa.Schema, pa.StructType]:
    """Return the Arrow schema of ``table`` and the struct type of one of its rows."""
    schema = arrow_schema(table)
    return schema, pa.struct(list(schema))


@register("buffer", "duckdb", DuckDbBufferConfig)
def make_duckdb_buffer(config: DuckDbBufferConfig) -> WriteBuffer:
    buffer = WriteBuffer(config.batch_size, background=config.background)
    buffer.sweep_format = config.sweep_format  # read by runner.job_cache.sweep_buffer
    return buffer


@register("buffer", "memory", MemoryBufferConfig)
def make_memory_buffer(config: MemoryBufferConfig) -> MemoryBuffer:
    return MemoryBuffer(config.batch_size)
