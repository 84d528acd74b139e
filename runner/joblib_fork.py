"""``hydra/launcher=joblib``: fork the workers from this warm process instead of spawning them.

Hydra's joblib launcher hard-codes joblib's ``loky`` backend (``hydra_joblib_launcher._core``:
``joblib_cfg["backend"] = "loky"``). loky starts each worker as a fresh interpreter, so every
worker imports numpy, pandas, DuckDB, Hydra and the runner again and unpickles the config
loader's payload: ~1.1 s of imports plus ~0.5-0.8 s of unpickling per worker (py-spy, session
6), CPU that on a 2-core machine is taken from the jobs, and a loky shutdown of ~0.4 s at the
end. On POSIX the workers are forked instead (joblib's ``multiprocessing`` backend, a
``fork``-context pool): they start with everything the parent imported. The fork happens when
the launcher calls ``Parallel``, the same point at which ``hydra/launcher=batched`` forks: the
sweep process has opened no DuckDB connection yet (its jobs run in the workers).

Everything else is Hydra's: ``execute_job``, the singleton state, ``run_job`` per job, the
returns. ``RUNNER_JOBLIB_BACKEND=loky`` keeps Hydra's behaviour (and any backend named there is
passed through). Where fork is unavailable nothing changes.
"""

from __future__ import annotations

import multiprocessing
import os
from typing import Any

from components.errors import UserFacingError
from runner import fast_compose, startup

ENV = "RUNNER_JOBLIB_BACKEND"


def install() -> bool:
    """Make the joblib launcher fork its workers; return True when installed (or already)."""
    try:
        from hydra_plugins.hydra_joblib_launcher import _core
    except ImportError:  # the plugin is not installed: nothing to do
        return False
    if getattr(_core.Parallel, "forks_workers", False):
        return True
    if "fork" not in multiprocessing.get_all_start_methods():
        return False
    original = _core.Parallel

    def parallel(**joblib_cfg: Any) -> Any:
        wanted = os.environ.get(ENV, "").strip()
        if wanted:
            joblib_cfg["backend"] = _checked_backend(wanted)
        elif joblib_cfg.get("backend") == "loky":  # Hydra's hard-coded choice, not the user's
            joblib_cfg["backend"] = "multiprocessing"
        runner = original(**joblib_cfg)
        return _Forked(runner) if joblib_cfg.get("backend") == "multiprocessing" else runner

    parallel.forks_workers = True  # type: ignore[attr-defined]
    _core.Parallel = parallel
    os.register_at_fork(after_in_child=_in_forked_worker)
    return True


def _checked_backend(name: str) -> str:
    """Return ``name`` if joblib knows the backend; else one line naming the variable and the fix."""
    from joblib.parallel import BACKENDS

    if name not in BACKENDS:
        raise UserFacingError(
            f"{ENV}={name!r} is not a joblib backend; use one of {', '.join(sorted(BACKENDS))} "
            f"(e.g. {ENV}=loky for Hydra's own), or unset it to fork the workers"
        )
    return name


_FORKING: list[bool] = []  # [True] while ``_Forked`` creates its pool (the forks are its workers)


def _in_forked_worker() -> None:
    """In a pool worker just forked: SIGTERM kills it again (the default).

    The sweep process installed the runner's start-up handlers (``runner.startup``: SIGTERM
    raises ``StartupInterrupt``) and the worker inherits them, but joblib ends the pool with
    ``Pool.terminate``, a SIGTERM to each worker, and then joins them: a worker idle on the task
    queue must die there and then (a benchmark run once hung in that join), and so must one in
    the middle of a job (``runner.startup.make_sigterm_kill``: the loop then keeps SIGINT and
    SIGUSR1 handling but leaves SIGTERM at its default).
    """
    if _FORKING:
        startup.make_sigterm_kill()


_OBJECTS: dict[int, Any] = {}  # id -> a task's argument, filled before the fork


def _inherited(key: int) -> Any:
    """Return the parent's object ``key`` as this forked worker inherited it."""
    obj = _OBJECTS[key]
    loader = getattr(obj, "config_loader", None)  # the HydraContext
    if isinstance(loader, fast_compose.FastSweepConfigLoader):
        fast_compose.serve_jobs_in_this_worker(loader)  # as a loky worker's restored loader
    return obj


class _Ref:
    """A task argument passed to a forked worker by its id in the parent.

    The worker was forked after the arguments were made, so it holds the very same objects:
    nothing but this id is pickled per job. With loky every job pickled Hydra's context, the
    config and the singleton state (ConfigStore, OmegaConf resolvers: local functions that only
    cloudpickle can pickle), and the task function, which plain pickle cannot find by name
    (``python -m runner`` makes it ``__main__.main`` behind Hydra's decorator).
    """

    def __init__(self, obj: Any) -> None:
        _OBJECTS[id(obj)] = obj
        self.key = id(obj)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_inherited, (self.key,))


class _Forked:
    """``Parallel`` whose tasks carry their arguments as ``_Ref``s to the forked workers."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def __call__(self, tasks: Any) -> Any:
        def by_ref(task: tuple[Any, tuple[Any, ...], dict[str, Any]]) -> tuple[Any, ...]:
            function, args, kwargs = task
            refs = tuple(_Ref(a) for a in args)
            return (function, refs, {k: _Ref(v) for k, v in kwargs.items()})

        listed = [by_ref(t) for t in tasks]  # every argument registered before the fork
        _FORKING.append(True)
        try:
            return self.runner(listed)
        finally:
            _FORKING.clear()
            _OBJECTS.clear()
