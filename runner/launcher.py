"""``hydra/launcher=batched``: run a sweep's jobs in this process or in forked workers, lean.

Hydra's basic launcher pays, per job, a full config composition, two deep copies of the whole
config (Hydra's own node included), three YAML files and logging set-up around the task; the
joblib launcher pays the same per job in every worker, plus pickling the task to it. With GOOG
daily bars (2,148) a job's loop takes ~25-60 ms, so that overhead was most of a sweep.

This launcher keeps what a job must have and drops the rest:
- configs come from ``runner.fast_compose`` (derived from one composed job of the same shape);
- each job dir gets ``.hydra/config.yaml`` and ``.hydra/overrides.yaml`` (what the sweep report,
  resume and a rerun of one job read), not ``hydra.yaml`` (Hydra's own config, identical for
  every job but the job number: it stays in the sweep dir's ``multirun.yaml``);
- the task function, the ``on_job_start``/``on_job_end`` callbacks and ``HydraConfig`` are as
  under Hydra's launchers, so every job still writes its digest, summary.json and trades.csv;
- ``n_jobs > 1`` forks that many workers after start-up (warm imports, copy-on-write), each
  keeping its per-process caches (market DB connection, plan, bars) across its jobs.

Fork is POSIX-only and is taken before any DuckDB connection exists in the parent; elsewhere
(``n_jobs=1``) everything runs in this process.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf, ValueNode, open_dict, read_write

from runner import fast_compose
from runner.parity import declared_keys, flatten

log = logging.getLogger(__name__)
_ACTIVE: BatchedLauncher | None = None  # the launcher a forked worker runs jobs for


class BatchedLauncher(Launcher):
    def __init__(self, n_jobs: int = 1) -> None:
        self.n_jobs = int(n_jobs)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        if not isinstance(hydra_context.config_loader, fast_compose.FastSweepConfigLoader):
            hydra_context.config_loader = fast_compose.FastSweepConfigLoader(
                hydra_context.config_loader
            )
        # jobs run one at a time per process and their configs are dropped after each job:
        # one config per shape, updated in place (the sweeper's validation included)
        hydra_context.config_loader.in_place = True

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        if self.n_jobs <= 1 or len(jobs) <= 1 or os.name != "posix":
            return [self.run_one(job) for job in jobs]
        global _ACTIVE
        _ACTIVE = self
        declared_keys()  # read once here (the report needs them too), not once per worker
        context = multiprocessing.get_context("fork")  # workers inherit Hydra's singletons
        with context.Pool(min(self.n_jobs, len(jobs)), initializer=_init_worker) as pool:
            returns = pool.map(_run_in_worker, jobs, chunksize=1)
        _ACTIVE = None
        return returns

    def run_one(self, job: tuple[int, list[str]]) -> JobReturn:
        """Compose (derive) one job's config and run the task in its output dir."""
        assert self.hydra_context is not None and self.config is not None
        idx, overrides = job
        loader = self.hydra_context.config_loader
        load = getattr(loader, "job_config", loader.load_sweep_config)
        config = load(self.config, overrides)
        with read_write(config.hydra), open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
        return run_lean_job(config, self.hydra_context, self.task_function)


def _init_worker() -> None:
    """Drop the sweep report's plot-helper pipes, so only the sweep process holds them."""
    from runner import sweep

    sweep.release_plot_worker_in_child()


def _run_in_worker(job: tuple[int, list[str]]) -> JobReturn:
    assert _ACTIVE is not None
    ret = _ACTIVE.run_one(job)
    ret.hydra_cfg = None  # the parent does not need it; pickling it back costs ~ms per job
    return ret


def run_lean_job(
    config: DictConfig, hydra_context: HydraContext, task_function: TaskFunction | None
) -> JobReturn:
    """Run one job as ``hydra.core.utils.run_job`` does, minus what a sweep job never reads."""
    assert task_function is not None
    callbacks = hydra_context.callbacks
    output_dir = Path(_sweep_value(config, "dir")) / _sweep_value(config, "subdir")
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = str(output_dir.absolute())
    set_hydra_config(config)
    in_place = getattr(hydra_context.config_loader, "task_config", None)
    task_cfg = (in_place(config) if in_place is not None else None) or _task_config(config)
    ret = JobReturn()
    ret.cfg = task_cfg
    ret.hydra_cfg = config
    ret.overrides = list(config.hydra.overrides.task)
    ret.working_dir = os.getcwd()
    hydra_dir = output_dir / str(config.hydra.output_subdir or ".hydra")
    hydra_dir.mkdir(parents=True, exist_ok=True)
    container = OmegaConf.to_container(task_cfg, resolve=False)
    if _plain_tree(container):  # no interpolation, no enum: it is also the resolved config
        _RESOLVED[:] = [(task_cfg, container)]
    else:
        container = OmegaConf.to_container(task_cfg, resolve=False, enum_to_str=True)
    (hydra_dir / "config.yaml").write_text(_SPLICER.text(container), encoding="utf-8")
    # the sweep report's record of the job (runner.sweep.task_flat) from the same container
    ret.task_flat = flatten(container)  # type: ignore[attr-defined]
    (hydra_dir / "overrides.yaml").write_text(
        fast_compose.to_yaml(config.hydra.overrides.task), encoding="utf-8"
    )
    callbacks.on_job_start(config=config, task_function=task_function)
    try:
        ret.return_value = task_function(task_cfg)
        ret.status = JobStatus.COMPLETED
    except Exception as exc:  # as Hydra does: the job failed, the sweep goes on
        ret.return_value = exc
        ret.status = JobStatus.FAILED
    finally:
        _RESOLVED.clear()
    ret.task_name = str(config.hydra.job.name)
    callbacks.on_job_end(config=config, job_return=ret)
    # the sweeper keeps every JobReturn until the sweep ends and reads only status and
    # return_value: holding two configs per job made a 1,000-job sweep's RSS creep, and the
    # job's config may be the per-shape one that the next job updates in place
    ret.cfg = ret.hydra_cfg = ret.task_flat = None  # type: ignore[attr-defined]
    return ret


def _sweep_value(config: DictConfig, key: str) -> str:
    """Return ``str(config.hydra.sweep[key])`` without OmegaConf's grammar parse where it is plain.

    Resolving Hydra's default ``subdir: ${hydra.job.num}`` parsed the interpolation with ANTLR for
    every job (~0.7 ms); that one reads the job number directly, a plain string is taken as it is,
    and anything else is resolved by OmegaConf as before.
    """
    node = config.hydra.sweep._get_node(key)
    raw = node._value() if isinstance(node, ValueNode) else None
    if raw == "${hydra.job.num}":
        return str(config.hydra.job.num)
    if isinstance(raw, str) and "${" not in raw and "\\" not in raw:
        return raw
    return str(config.hydra.sweep[key])


_SPLICER = fast_compose.YamlSplicer()  # .hydra/config.yaml of a grid: only swept values re-emitted
_RESOLVED: list[tuple[DictConfig, dict[str, Any]]] = []  # the running job's (task config, resolved)


def take_resolved(cfg: DictConfig) -> dict[str, Any] | None:
    """Return the running job's config resolved to plain containers, if the launcher has it.

    ``run_lean_job`` converts the task config to containers for ``.hydra/config.yaml``; when that
    container holds no interpolation and no enum it equals ``OmegaConf.to_container(cfg,
    resolve=True)`` (what ``runner.plan.check_interpolations`` returns), so the job takes it
    instead of converting the config a second time (~0.5 ms a job). Read-only for the taker.
    """
    if _RESOLVED and _RESOLVED[0][0] is cfg:
        return _RESOLVED.pop()[1]
    return None


def _plain_tree(node: Any) -> bool:
    """True when ``node`` (containers from ``OmegaConf.to_container``) holds no ``${`` and no enum."""
    if isinstance(node, dict):
        return all(type(k) in (str, int) and _plain_tree(v) for k, v in node.items())
    if isinstance(node, list):
        return all(_plain_tree(v) for v in node)
    if isinstance(node, Enum):
        return False
    return not isinstance(node, str) or "${" not in node


# the hydra keys that differ between the jobs of one in-place config (runner.fast_compose sets
# the first two, ``run_one`` and ``run_lean_job`` the others); every other hydra key is the shape's
VARYING_HYDRA_KEYS = ("overrides.task", "job.override_dirname", "job.id", "job.num")
_VIEW: dict[str, Any] = {}  # the last in-place config and HydraConfig's copy of its hydra node


def set_hydra_config(config: DictConfig) -> None:
    """``HydraConfig.instance().set_config(config)``, ~0.3 ms instead of ~7-11 ms for a config
    that is the same (in-place) object as the previous job's.

    ``set_config`` copies the whole ``hydra`` node for every job. The copy of an in-place config
    differs from the previous job's only in ``VARYING_HYDRA_KEYS`` and ``runtime.output_dir``,
    so those are set on the copy made for the first job of the shape; interpolations in the
    copy resolve against ``config`` itself, as after ``set_config``.
    """
    instance = HydraConfig.instance()
    view = _VIEW.get("view")
    if _VIEW.get("config") is not config or view is None or instance.cfg is not view:
        instance.set_config(config)
        _VIEW.update(config=config, view=instance.cfg)
        return
    source, target = config.hydra, view.hydra
    with read_write(target), open_dict(target):
        for key in VARYING_HYDRA_KEYS:
            value = OmegaConf.select(source, key)
            if isinstance(value, ListConfig):
                if fast_compose.set_string_list(target, key, list(value)):
                    continue
            elif fast_compose.set_leaf(target, key, value):
                continue
            OmegaConf.update(target, key, value, merge=False)
        if not fast_compose.set_leaf(target, "runtime.output_dir", source.runtime.output_dir):
            target.runtime.output_dir = source.runtime.output_dir


def _task_config(config: DictConfig) -> DictConfig:
    """Return the job's config without the ``hydra`` node (copying only the task part)."""
    hydra_node = config._get_node("hydra")
    with open_dict(config):
        del config["hydra"]
    try:
        task_cfg = copy.deepcopy(config)
    finally:
        with open_dict(config):
            config["hydra"] = hydra_node
    return task_cfg
