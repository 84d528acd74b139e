"""WriteBuffer: flush at batch size, at shutdown, on exceptions; rows leave only after COMMIT."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.execution.records import SignalRow, results_ddl
from components.execution.write_buffer import (
    FlushError,
    MemoryBuffer,
    WriteBuffer,
    digest_of_results,
)


def equity_row(i: int) -> tuple:
    return (1_700_000_000_000_000 + i * 60_000_000, 1e6, 1e6 + i)


def signal_row(i: int) -> SignalRow:
    ts = 1_700_000_000_000_000 + i
    return SignalRow(
        i, ts, "AAA", "buy", 100, "sma_up_cross", i, "market", None, None, "gtc", None, None, "open"
    )


def count(path: Path, table: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def test_buffer_when_batch_size_reached_then_flushes_exactly_once(tmp_path: Path) -> None:
    buffer = WriteBuffer(batch_size=3)
    buffer.open(tmp_path / "r.duckdb")
    buffer.add("equity", equity_row(0))
    buffer.add("signals", signal_row(1))
    assert (buffer.flushes, buffer.n_pending) == (0, 2)
    buffer.add("equity", equity_row(2))
    assert (buffer.flushes, buffer.n_pending, buffer.rows_written) == (1, 0, 3)
    buffer.close()
    assert (
        count(tmp_path / "r.duckdb", "equity") == 2 and count(tmp_path / "r.duckdb", "signals") == 1
    )


def test_buffer_when_shutdown_then_pending_rows_written(tmp_path: Path) -> None:
    buffer = WriteBuffer(batch_size=1000)
    buffer.open(tmp_path / "r.duckdb")
    for i in range(10):
        buffer.add("signals", signal_row(i))
    buffer.flush()
    buffer.close()
    assert count(tmp_path / "r.duckdb", "signals") == 10


def test_buffer_when_commit_fails_then_rows_kept_and_error_names_file(tmp_path: Path) -> None:
    buffer = WriteBuffer(batch_size=1000)
    buffer.open(tmp_path / "r.duckdb")
    for i in range(5):
        buffer.add("signals", signal_row(i))
    buffer.con.execute("DROP TABLE signals")  # the INSERT inside the flush transaction now fails
    with pytest.raises(FlushError, match=r"could not commit 5 buffered row\(s\) to .*r\.duckdb"):
        buffer.flush()
    assert buffer.n_pending == 5 and len(buffer.pending["signals"]) == 5
    buffer.close()


@settings(max_examples=25, deadline=None)
@given(n_rows=st.integers(0, 60), batch_size=st.integers(1, 25))
def test_buffer_when_any_batch_size_then_every_row_written_once_in_order(
    tmp_path_factory, n_rows: int, batch_size: int
) -> None:
    path = tmp_path_factory.mktemp("b") / "r.duckdb"
    buffer, memory = WriteBuffer(batch_size), MemoryBuffer(batch_size)
    buffer.open(path)
    for i in range(n_rows):
        buffer.add("signals", signal_row(i))
        memory.add("signals", signal_row(i))
    buffer.flush()
    memory.flush()
    assert digest_of_results(buffer.con) == buffer.digest.hexdigest() == memory.digest.hexdigest()
    assert buffer.flushes == -(-n_rows // batch_size)
    buffer.close()


@settings(max_examples=25, deadline=None)
@given(n_rows=st.integers(0, 60), batch_size=st.integers(1, 25))
def test_background_buffer_when_any_batch_size_then_same_rows_digest_and_flushes_as_synchronous(
    tmp_path_factory, n_rows: int, batch_size: int
) -> None:
    # Arrange
    folder = tmp_path_factory.mktemp("bg")
    sync, background = WriteBuffer(batch_size), WriteBuffer(batch_size, background=True)
    sync.open(folder / "sync.duckdb")
    background.open(folder / "background.duckdb")
    # Act
    for i in range(n_rows):
        for buffer in (sync, background):
            buffer.add("signals", signal_row(i))
            buffer.add("equity", equity_row(i))
    sync.flush()
    background.flush()  # waits for the batch in flight, then commits the rest
    # Assert
    assert background.n_pending == 0 and background.flushes == sync.flushes
    assert background.rows_written == sync.rows_written == 2 * n_rows
    assert digest_of_results(background.con) == background.digest.hexdigest()
    assert background.digest.hexdigest() == sync.digest.hexdigest()
    got = background.con.execute("SELECT seq FROM signals ORDER BY seq").fetchall()
    assert [r[0] for r in got] == list(range(n_rows))
    sync.close()
    background.close()


def test_background_buffer_when_batch_in_flight_fails_then_next_flush_raises_and_keeps_rows_in_order(
    tmp_path: Path,
) -> None:
    # Arrange: the table the writer inserts into is gone, so the batch in flight fails
    buffer = WriteBuffer(batch_size=4, background=True)
    buffer.open(tmp_path / "r.duckdb")
    buffer.con.execute("DROP TABLE signals")
    for i in range(4):  # the 4th row hands the batch to the writer thread
        buffer.add("signals", signal_row(i))
    buffer.add("signals", signal_row(4))
    # Act
    with pytest.raises(FlushError, match=r"could not commit 5 buffered row\(s\) to .*r\.duckdb"):
        buffer.flush()
    # Assert: the failed batch is back in front of the row added after it; only committed rows
    # reach the digest, so the retry below cannot digest any row twice
    assert buffer.n_pending == 5
    assert [r.seq for r in buffer.pending["signals"]] == [0, 1, 2, 3, 4]
    assert buffer.digest.counts["signals"] == 0
    buffer.con.execute(results_ddl())  # the table is back: the retry commits all five, in order
    assert buffer.flush() == 5
    clean = MemoryBuffer(batch_size=4)
    for i in range(5):
        clean.add("signals", signal_row(i))
    clean.flush()
    assert buffer.digest.counts["signals"] == 5
    assert buffer.digest.hexdigest() == clean.digest.hexdigest() == digest_of_results(buffer.con)
    buffer.close()


class _CommitLog(WriteBuffer):
    """A WriteBuffer that records the rows of each commit (its tables' rows, in order)."""

    def __init__(self, batch_size: int) -> None:
        super().__init__(batch_size, background=False)
        self.commits: list[dict[str, list[tuple]]] = []

    def _commit(self, con, tables, n_rows, *args, **kwargs) -> None:  # type: ignore[override]
        self.commits.append({name: list(rows) for name, rows in tables.items() if rows})
        super()._commit(con, tables, n_rows, *args, **kwargs)


@settings(max_examples=40, deadline=None)
@given(
    batch_size=st.integers(min_value=1, max_value=12),
    calls=st.lists(
        st.tuples(st.sampled_from(["one signal", "equity rows"]), st.integers(0, 25)),
        min_size=1,
        max_size=12,
    ),
)
def test_add_many_when_any_rows_and_batch_size_then_same_commits_as_add_per_row(
    batch_size: int, calls: list[tuple[str, int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The engine hands a chunk's equity rows over in one ``add_many``: the batches committed
    are the ones ``add`` per row makes (a batch still flushes at ``batch_size`` rows exactly)."""
    folder = tmp_path_factory.mktemp("add_many")
    per_row, at_once = _CommitLog(batch_size), _CommitLog(batch_size)
    per_row.open(folder / "per_row.duckdb")
    at_once.open(folder / "at_once.duckdb")
    seq = 0
    for kind, n in calls:
        if kind == "one signal":
            seq += 1
            per_row.add("signals", signal_row(seq))
            at_once.add("signals", signal_row(seq))
            continue
        rows = [equity_row(seq * 100 + i) for i in range(n)]
        for row in rows:
            per_row.add("equity", row)
        at_once.add_many("equity", rows)
        assert (at_once.n_pending, at_once.flushes) == (per_row.n_pending, per_row.flushes)
    per_row.flush()
    at_once.flush()
    assert at_once.commits == per_row.commits
    assert at_once.rows_written == per_row.rows_written
    per_row.close()
    at_once.close()


def test_queue_when_error_on_its_way_then_rows_kept_past_batch_size_without_a_flush(
    tmp_path: Path,
) -> None:
    buffer = _CommitLog(batch_size=3)
    buffer.open(tmp_path / "r.duckdb")
    buffer.add("signals", signal_row(1))
    buffer.queue("equity", [equity_row(i) for i in range(5)])
    assert (buffer.n_pending, buffer.commits) == (6, [])
    buffer.flush()  # the failure path: every pending row in one transaction
    assert [sum(map(len, c.values())) for c in buffer.commits] == [6]
    buffer.close()
    assert count(tmp_path / "r.duckdb", "equity") == 5


def test_add_many_when_buffer_already_past_batch_size_then_flushes_like_add(
    tmp_path: Path,
) -> None:
    per_row, at_once = _CommitLog(batch_size=3), _CommitLog(batch_size=3)
    per_row.open(tmp_path / "a.duckdb")
    at_once.open(tmp_path / "b.duckdb")
    for buffer in (per_row, at_once):  # as after a failed flush put its rows back: 4 pending
        buffer.queue("equity", [equity_row(i) for i in range(4)])
    rows = [equity_row(10 + i) for i in range(5)]
    for row in rows:
        per_row.add("equity", row)
    at_once.add_many("equity", rows)
    assert at_once.commits == per_row.commits and at_once.n_pending == per_row.n_pending
    per_row.close()
    at_once.close()


def test_end_loop_when_background_writer_then_rows_checkpointed_while_the_report_reads(
    tmp_path: Path,
) -> None:
    """end_loop moves the rows from the WAL into the file on the writer thread; reads go on
    meanwhile, and the next write (the final status) waits for it."""
    path = tmp_path / "r.duckdb"
    wal = Path(str(path) + ".wal")
    buffer = WriteBuffer(batch_size=64, background=True)
    buffer.open(path)
    run_row = ("run1", "hash", "/data/m.duckdb", 1)
    buffer.record_run_start(run_row, 0)
    for i in range(500):
        buffer.add("signals", signal_row(i))
        buffer.add("equity", equity_row(i))
    buffer.end_loop(run_row, 0, "reporting", "d" * 64, 1)
    reader = buffer.reader()
    assert reader is not None
    assert reader.execute("SELECT count(*) FROM equity").fetchone() == (500,)  # during it
    buffer._wait_checkpoint()
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL still holds the run's rows"
    buffer.record_status("run1", "completed")
    buffer.close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM signals").fetchone() == (500,)
        assert con.execute("SELECT status FROM runs").fetchone() == ("completed",)
    finally:
        con.close()
