"""The Hydra task function, in an importable module rather than ``runner/__main__``.

Parallel launchers (``hydra/launcher=joblib``, ``submitit_local``, ``submitit_slurm``) pickle the
task function and run it in other processes. A function defined in ``__main__`` is pickled by
value together with its globals (loguru's logger holds stderr and cannot be pickled), and the
worker would never import ``runner.components_index``, so its registry would be empty. Keeping
the body here means the worker imports this module by name, which fills the registry first.

``RUNNER_PLUGINS`` (comma-separated module names) is imported right after the built-in
components, before Hydra composes: it is how you add your own strategy or provider without
editing this package. Decorate a factory with ``@register("strategy", "my_kind", MyConfig)`` in
your module, put ``conf/strategy/my_kind.yaml`` in a directory added with
``hydra.searchpath=[file://my_conf]``, then run with ``RUNNER_PLUGINS=my_module``. The tests use
the same mechanism to register a deliberately broken provider in a subprocess.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from loguru import logger
from omegaconf import DictConfig

import runner.components_index  # noqa: F401 - fills the registry and ConfigStore before composing
from components.data.market_db import content_version
from components.errors import UserFacingError
from runner import job_cache, resume
from runner.app import run_backtest
from runner.rundir import remove_stub

EXTRA_IMPORTS_ENV = "RUNNER_PLUGINS"


class JobFailedError(UserFacingError):
    """A multirun job failed; the sweep goes on and the CLI exits 1 once every job has run."""

    exit_code = 1


def import_extra_modules(spec: str | None = None) -> list[str]:
    """Import every module named in ``spec`` (default: ``$RUNNER_PLUGINS``); return their names."""
    names = [
        n.strip()
        for n in (os.environ.get(EXTRA_IMPORTS_ENV, "") if spec is None else spec).split(",")
    ]
    names = [n for n in names if n]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UserFacingError(
                f"{EXTRA_IMPORTS_ENV}: could not import {name!r} ({exc}); fix the module name or unset "
                f"{EXTRA_IMPORTS_ENV}."
            ) from None
    return names


def run_job(cfg: DictConfig) -> int:
    """Run one backtest job (single run or one multirun job) in Hydra's output dir.

    A multirun job shares this process's caches with the other jobs of the sweep
    (``runner.job_cache``) and is skipped when its run dir already holds a complete run of the
    same job (``runner.resume``; ``run.resume=false`` reruns it).
    """
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if multirun and not cfg.run.dry_run and _reuse_or_start(cfg, run_dir):
        return 0
    try:
        code = run_backtest(cfg, run_dir, quiet=multirun, shared=multirun)
    except UserFacingError:
        raise
    except Exception as exc:  # one line on the console, the traceback in runner.log
        if (
            run_dir / "runner.log"
        ).exists():  # the console handler is INFO: DEBUG reaches runner.log only
            logger.opt(exception=exc).debug("run failed")
        message = f"run failed: {type(exc).__name__}: {exc} (traceback in {run_dir / 'runner.log'})"
        logger.error(message)
        if (
            multirun
        ):  # let Hydra record the job as failed and run the remaining jobs; exit 1 at the end
            raise JobFailedError(message) from None
        raise SystemExit(1) from None
    if cfg.run.dry_run and not multirun:
        remove_stub(run_dir)  # a dry run writes nothing (runner.rundir)
    if code != 0:
        raise SystemExit(code)
    return code


def _reuse_or_start(cfg: DictConfig, run_dir: Path) -> bool:
    """Return True when an earlier complete run of this job is reused; else clear the run dir."""
    try:
        con = job_cache.market_connection(cfg.db.path)
        identity = resume.job_identity(cfg, content_version(con), job_cache.code_version())
    except Exception:  # no readable market DB: the run itself reports it in one line
        resume.start_attempt(run_dir, None)
        return False
    summary = resume.reusable(run_dir, identity) if cfg.run.resume else None
    if summary is not None:
        resume.mark_reused(run_dir, identity)  # the sweep report lists it (no log: no handler yet)
        return True
    resume.start_attempt(run_dir, identity)
    return False


import_extra_modules()
