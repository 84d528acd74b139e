"""A sweep through a real Slurm scheduler (issue 13): ``hydra/launcher=submitit_slurm``.

``.ci/run`` starts a one-node cluster with ``scripts/slurm/setup.sh`` (slurm-wlm and munge from
Debian, controller and node on this machine) before the slow tests. The test skips, saying why,
only when no Slurm daemons answer; it never fakes the scheduler.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO, make_market_db, run_cli, synthetic_bars

SETUP = REPO / "scripts" / "slurm" / "setup.sh"


def _slurm_unavailable() -> str | None:
    """Return why Slurm cannot run a job here, or None when ``srun -N1 hostname`` works."""
    if shutil.which("srun") is None or shutil.which("sbatch") is None:
        return f"Slurm is not installed (no srun/sbatch); run `sudo bash {SETUP}` first"
    try:
        proc = subprocess.run(
            ["srun", "-N1", "hostname"], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return f"`srun -N1 hostname` did not answer in 60 s; restart the daemons with {SETUP}"
    if proc.returncode != 0:
        return (
            f"the Slurm daemons do not run a job (srun: {proc.stderr.strip()[:200]}); "
            f"start them with `sudo bash {SETUP}`"
        )
    return None


@pytest.mark.slow
def test_slurm_when_a_sweep_runs_on_submitit_slurm_then_jobs_ran_in_slurm_with_one_digest_per_group(
    tmp_path: Path,
) -> None:
    """4 jobs (2 strategy settings x 2 chunk sizes) as a Slurm array: job ids, 2 digests."""
    # Arrange
    reason = _slurm_unavailable()
    if reason:
        pytest.skip(reason)
    db = make_market_db(tmp_path / "market.duckdb", synthetic_bars(3, 400, seed=2))
    sweep_dir = tmp_path / "sweep"
    # Act
    proc = run_cli(
        "runner",
        [
            "-m",
            "+experiment=backtest",
            f"db.path={db}",
            f"hydra.sweep.dir={sweep_dir}",
            "strategy.fast=5,8",
            "market.chunk_size=50,1000",
            "hydra/launcher=submitit_slurm",
            "hydra.launcher.partition=debug",
            "hydra.launcher.timeout_min=10",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=1",
            "hydra.launcher.array_parallelism=4",
        ],
        timeout=600,
    )
    # Assert
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(sweep_dir / "sweep_report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(r["status"] == "completed" for r in rows)
    assert all(r["slurm_job_id"] for r in rows), "every job must carry its SLURM_JOB_ID"
    assert len({r["slurm_job_id"].split("_")[0] for r in rows}) == 1  # one job array
    digests = {}
    for row in rows:
        digests.setdefault(row["group"], set()).add(row["digest"])
    assert sorted(len(d) for d in digests.values()) == [1, 1]  # 2 groups, one digest each
    assert len({d for ds in digests.values() for d in ds}) == 2
    assert "ran through Slurm" in (sweep_dir / "sweep_report.md").read_text()
    record = json.loads((sweep_dir / "0" / "sweep_job.json").read_text())
    assert record["slurm_job_id"] == rows[0]["slurm_job_id"]
