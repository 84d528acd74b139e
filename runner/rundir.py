"""The run directory Hydra creates: keep an earlier run's record, and leave no stub behind.

Hydra creates ``hydra.run.dir`` and writes ``.hydra/`` into it before the task function runs, so a
refused or dry run would leave a stub directory (``.hydra/`` and ``runner.log``), against "nothing
written". ``RunDirGuard`` (a Hydra callback, ``conf/config.yaml``) records, before Hydra touches
the disk, which directories the run is about to create. ``remove_stub`` deletes them again after a
refusal, an interruption during start-up or a dry run, but only while the run dir holds nothing
besides ``.hydra/`` and ``runner.log``: a directory that existed before, or that holds results,
is never touched. When ``hydra.run.dir`` names an earlier run (it has ``results.duckdb``), the
guard stops Hydra from overwriting that run's ``.hydra/`` record; the runner then refuses with
"a run dir is never reused".

Multirun job dirs are left alone: Hydra records each job, failed or not, in the sweep.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

STUB_ENTRIES = {".hydra", "runner.log"}
HYDRA_FILES = {"config.yaml", "hydra.yaml", "overrides.yaml"}

# run dir -> the topmost directory this process is about to create for it
_created: dict[Path, Path] = {}


class RunDirGuard(Callback):
    """Record what a single run will create; protect an earlier run's ``.hydra/``."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir = Path(str(config.hydra.run.dir)).absolute()
        top = _topmost_missing(run_dir)
        if top is not None:
            _created[run_dir] = top
        elif (run_dir / "results.duckdb").exists():
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = (
                    None  # the runner refuses the reuse; keep the old record
                )


def _topmost_missing(path: Path) -> Path | None:
    """Return the highest ancestor of ``path`` (or ``path``) that does not exist yet, or None."""
    if path.exists():
        return None
    top = path
    while not top.parent.exists():
        top = top.parent
    return top


def is_stub(run_dir: Path) -> bool:
    """Return True if ``run_dir`` holds only what Hydra and start-up logging put there."""
    try:
        entries = {p.name for p in run_dir.iterdir()}
        hydra = {p.name for p in (run_dir / ".hydra").iterdir()} if ".hydra" in entries else set()
    except OSError:
        return False
    return entries <= STUB_ENTRIES and hydra <= HYDRA_FILES


def remove_stub(run_dir: Path | None = None) -> bool:
    """Delete a stub run dir this process created (default: every one recorded); return True if any."""
    removed = False
    for recorded, top in list(_created.items()):
        if run_dir is not None and recorded != Path(run_dir).absolute():
            continue
        if recorded.exists() and is_stub(recorded):
            shutil.rmtree(recorded, ignore_errors=True)
            removed = True
            _remove_empty_parents(recorded, top)
        del _created[recorded]
    return removed


def _remove_empty_parents(run_dir: Path, top: Path) -> None:
    """Remove the directories between ``run_dir`` and ``top`` (inclusive) that are now empty."""
    if run_dir == top:
        return
    node = run_dir.parent
    while True:
        try:
            node.rmdir()  # only succeeds when empty
        except OSError:
            return
        if node == top:
            return
        node = node.parent
