"""The ``runs`` row of a results DB (DESIGN section 3): the statements that move it along.

``running`` (inserted before the loop) -> ``reporting`` with the loop's digest and end
(``loop_end``, once the last rows are committed) -> ``completed`` / ``halted`` / ``interrupted``
once every output file is in place (``final_status``), or ``failed`` with the error
(``failed``). Each function returns ``(sql, params)`` for the caller's connection or
transaction; the table itself is ``components.execution.records.RUNS_DDL``.
"""

from __future__ import annotations

from typing import Any

Statement = tuple[str, list[Any]]

RUNNING, REPORTING, FAILED = "running", "reporting", "failed"


def started(run_id: str, config_hash: str, market_db: str, market_db_version: int) -> Statement:
    """Insert the run's row as ``running`` (started now)."""
    return (
        "INSERT INTO runs VALUES (?, 'running', now(), NULL, ?, ?, ?, NULL, NULL, NULL)",
        [run_id, config_hash, market_db, market_db_version],
    )


def started_and_ended(
    run_id: str,
    config_hash: str,
    market_db: str,
    market_db_version: int,
    started_us: int,
    status: str,
    digest: str,
    stopped_at_us: int | None,
) -> Statement:
    """Insert the row of a run whose loop has ended (``started`` then ``loop_end`` in one).

    A multirun job commits its rows once, at the loop's end: its row is inserted there with the
    wall time it started at (epoch us), not inserted and then updated (one statement fewer).
    """
    return (
        "INSERT INTO runs VALUES (?, ?, make_timestamptz(?::BIGINT), now(), ?, ?, ?, ?, "
        "make_timestamptz(?::BIGINT), NULL)",
        [
            run_id,
            status,
            started_us,
            config_hash,
            market_db,
            market_db_version,
            digest,
            stopped_at_us,
        ],
    )


def loop_end(run_id: str, status: str, digest: str, stopped_at_us: int | None) -> Statement:
    """Record the loop's end: its status (``reporting`` until the outputs exist) and digest."""
    return (
        "UPDATE runs SET status = ?, ended_at = now(), digest = ?, "
        "stopped_at_ts = make_timestamptz(?::BIGINT) WHERE run_id = ?",
        [status, digest, stopped_at_us, run_id],
    )


def final_status(run_id: str, status: str) -> Statement:
    """Record the outcome once summary.json and the other outputs are in place."""
    return ("UPDATE runs SET status = ? WHERE run_id = ?", [status, run_id])


def failed(run_id: str, stopped_at_us: int | None, exc: BaseException) -> Statement:
    """Mark the run failed with the error's type and message (500 characters at most)."""
    return (
        "UPDATE runs SET status = 'failed', ended_at = now(), "
        "stopped_at_ts = make_timestamptz(?::BIGINT), message = ? WHERE run_id = ?",
        [stopped_at_us, f"{type(exc).__name__}: {exc}"[:500], run_id],
    )
