"""Resume a multirun: reuse the jobs of a sweep dir that already completed the same work.

A job's identity (DESIGN section 10) is the hash of its behaviour keys (``runner.parity``: every
key that ``conf/parity.yaml`` does not declare performance or display), the market DB's content
version and the code version (``runner.job_cache.code_version``). Each job writes its identity
to ``job_identity.json`` before it runs. Rerunning the same multirun command with the same
``hydra.sweep.dir`` then reuses a job whose run dir holds the same identity and a
``summary.json`` of a complete run (completed, or halted by its own kill switch); every other job
(failed, interrupted, killed, halted from outside, never run, or now different) runs again from
a clean run dir. ``run.resume=false`` reruns every job.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from components.execution.write_buffer import RESULTS_DIR, RUNS_FILE
from runner.outputs import write_json
from runner.parity import flatten, split_config

IDENTITY_FILE = "job_identity.json"
REUSED_FILE = "reused.json"  # written when a job was reused; the sweep report marks it
COMPLETE = ("completed", "halted")
MANUAL_HALT = "MANUAL"  # halt file / SIGUSR1 (submitit's time-limit warning): not a complete run
# what a previous attempt may have left in the run dir; .hydra/ is rewritten by Hydra itself
ATTEMPT_FILES = (
    "results",  # a directory of Parquet files (buffer.sweep_format=parquet)
    "results.duckdb",
    "results.duckdb.wal",
    "summary.json",
    "summary.md",
    "metrics.json",
    "trades.csv",
    "equity_daily.csv",
    "equity.png",
    "report.html",
    "runner.log",
    REUSED_FILE,
)


def behaviour_config(cfg: DictConfig, resolved: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the flattened behaviour keys of a job's config (resolved, no ``hydra`` node).

    ``resolved``: the config already resolved to plain containers (it is not modified).
    """
    container = OmegaConf.to_container(cfg, resolve=True) if resolved is None else dict(resolved)
    assert isinstance(container, dict)
    container.pop("hydra", None)
    behaviour, _ = split_config(flatten(container))
    return behaviour


def job_identity(
    cfg: DictConfig,
    market_db_version: int,
    code_version: str,
    resolved: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the identity record of a job: its hash and what went into it."""
    behaviour = behaviour_config(cfg, resolved)
    payload = json.dumps(
        {"behaviour": behaviour, "market_db_version": market_db_version, "code": code_version},
        sort_keys=True,
        default=str,
    )
    return {
        "identity": hashlib.sha256(payload.encode()).hexdigest()[:20],
        "market_db_version": market_db_version,
        "code_version": code_version,
    }


def reusable(run_dir: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """Return the summary of a complete earlier run of the same job in ``run_dir``, else None."""
    previous = _read_json(run_dir / IDENTITY_FILE)
    if previous.get("identity") != identity["identity"]:
        return None
    summary = _read_json(run_dir / "summary.json")
    if summary.get("status") not in COMPLETE or not summary.get("digest"):
        return None
    if (summary.get("kill_switch") or {}).get("code") == MANUAL_HALT:
        return None
    results = run_dir / RESULTS_DIR
    if results.is_dir() and not parquet_files_whole(results):
        return None  # written without fsync and cut by a crash of the machine: run it again
    return summary


def parquet_files_whole(folder: Path) -> bool:
    """Return True when ``folder`` holds ``runs.parquet`` and every Parquet file in it is whole.

    A whole Parquet file starts and ends with ``PAR1``; a sweep job's files are written without
    fsync, so after a crash of the machine (not of the process: a rename makes each file appear
    whole) a file may be empty or cut short. Reading 8 bytes a file is enough to tell.
    """
    if not (folder / RUNS_FILE).is_file():
        return False
    for path in folder.glob("*.parquet"):
        try:
            with open(path, "rb") as handle:
                head = handle.read(4)
                handle.seek(-4, os.SEEK_END)
                tail = handle.read(4)
        except OSError:
            return False
        if head != b"PAR1" or tail != b"PAR1":
            return False
    return True


def start_attempt(run_dir: Path, identity: dict[str, Any] | None) -> None:
    """Clear what an earlier attempt left in ``run_dir`` and record this attempt's identity."""
    try:  # a new job's dir holds only what the launcher just wrote: nothing to clear
        fresh = {entry.name for entry in os.scandir(run_dir)} <= {".hydra"}
    except OSError:
        fresh = False
    for name in () if fresh else (*ATTEMPT_FILES, IDENTITY_FILE):
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    if identity is not None:
        write_json(run_dir / IDENTITY_FILE, identity, fsync=False)  # synced at the sweep's end


def mark_reused(run_dir: Path, identity: dict[str, Any]) -> None:
    write_json(run_dir / REUSED_FILE, {"reused": True, **identity}, fsync=False)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
