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

import difflib
import importlib
import os
import pkgutil
import sys
import traceback
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from loguru import logger
from omegaconf import DictConfig

import runner.components_index  # noqa: F401 - fills the registry and ConfigStore before composing
from components.errors import UserFacingError
from runner import job_cache, launcher, resume, startup
from runner.app import run_backtest
from runner.plan import check_interpolations
from runner.rundir import remove_stub

EXTRA_IMPORTS_ENV = "RUNNER_PLUGINS"


class JobFailedError(UserFacingError):
    """A multirun job failed; the sweep goes on and the CLI exits 1 once every job has run."""

    exit_code = 1


def import_extra_modules(spec: str | None = None) -> list[str]:
    """Import every module named in ``spec`` (default: ``$RUNNER_PLUGINS``); return their names.

    Each failure is a ``UserFacingError`` naming the module and the fix: a module that cannot be
    found, one whose import raises, and one that registers no component.
    """
    from components.registry import entries

    names = [
        n.strip()
        for n in (os.environ.get(EXTRA_IMPORTS_ENV, "") if spec is None else spec).split(",")
    ]
    names = [n for n in names if n]
    for name in names:
        fresh = name not in sys.modules
        before = len(entries())
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
                raise UserFacingError(_not_found(name, exc.name)) from None
            raise UserFacingError(_import_failed(name, exc)) from None
        except Exception as exc:  # the plugin's own code raised while importing
            raise UserFacingError(_import_failed(name, exc)) from None
        if fresh and len(entries()) == before:
            raise UserFacingError(
                f"{EXTRA_IMPORTS_ENV}: module {name!r} was imported but registered no component; "
                "fix: decorate a Strategy subclass with @register_strategy(...) "
                "(components.strategies.api) or a factory with @register(...) in it, or drop it "
                f"from {EXTRA_IMPORTS_ENV}."
            )
    return names


def _not_found(name: str, missing: str) -> str:
    """Name the missing module, the directory searched first, and the closest sibling."""
    parent, _, leaf = missing.rpartition(".")
    hint = ""
    if parent and parent in sys.modules:
        siblings = [
            m.name for m in pkgutil.iter_modules(getattr(sys.modules[parent], "__path__", []))
        ]
        close = difflib.get_close_matches(leaf, siblings, n=1)
        hint = f" Did you mean {parent + '.' + close[0]!r}?" if close else ""
    needed = f" (needed for {name!r})" if missing != name else ""
    return (
        f"{EXTRA_IMPORTS_ENV}: no module named {missing!r}{needed} (searched the working directory "
        f"{Path.cwd()} and PYTHONPATH).{hint} Fix: give the dotted module name (e.g. "
        "examples.strategies.donchian), run from the directory that holds the package, or add that "
        "directory to PYTHONPATH."
    )


def _import_failed(name: str, exc: BaseException) -> str:
    """Say where the plugin's import raised (file:line of its last frame) and what."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" at {exc.filename}:{exc.lineno}"
    elif frames:
        where = f" at {frames[-1].filename}:{frames[-1].lineno}"
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return (
        f"{EXTRA_IMPORTS_ENV}: importing {name!r} failed with {type(exc).__name__}: {detail}{where}; "
        f"fix the module, or drop it from {EXTRA_IMPORTS_ENV}."
    )


def resolve_search_paths(argv: list[str]) -> list[str]:
    """Return ``argv`` with each relative ``file://`` entry of ``hydra.searchpath`` made absolute.

    Hydra takes such a path relative to wherever it happens to look, and a path that does not exist
    only earns a UserWarning followed by a misleading "no option" error. Resolve each one against
    the working directory now, and refuse a directory that does not exist.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out = []
    for arg in argv:
        if not arg.lstrip("+~").startswith("hydra.searchpath="):
            out.append(arg)
            continue
        try:
            (override,) = OverridesParser.create().parse_overrides([arg])
            value = override.value()
        except Exception:  # let Hydra report a malformed override in its own words
            out.append(arg)
            continue
        paths = value if isinstance(value, list) else [value]
        resolved = [_resolve_search_path(str(p)) for p in paths]
        quoted = ",".join("'" + p.replace("'", "\\'") + "'" for p in resolved)
        out.append(f"{arg.split('=', 1)[0]}=[{quoted}]")
    return out


def _resolve_search_path(entry: str) -> str:
    if not entry.startswith("file://"):
        return entry  # pkg:// and structured:// are Hydra's business
    raw = entry[len("file://") :]
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    if not path.is_dir():
        raise UserFacingError(
            f"hydra.searchpath: {entry} is not a directory (resolved against the working directory "
            f"to {path}); fix: give an existing config directory, e.g. "
            "hydra.searchpath=[file://examples/conf] from the repository root, or an absolute path."
        )
    return f"file://{path.resolve()}"


def prepare_cli() -> None:
    """Import the plugins and resolve search paths before Hydra reads ``sys.argv``.

    Runs when this module is imported (the Hydra entry point imports it first), so a failure is one
    line on stderr and exit 2, never a traceback.
    """
    try:
        import_extra_modules()
        main = sys.modules.get("__main__")
        if getattr(getattr(main, "__spec__", None), "name", "") == "runner.__main__":
            sys.argv[1:] = resolve_search_paths(sys.argv[1:])
    except UserFacingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


def run_job(cfg: DictConfig) -> int:
    """Run one backtest job (single run or one multirun job) in Hydra's output dir.

    A multirun job shares this process's caches with the other jobs of the sweep
    (``runner.job_cache``) and is skipped when its run dir already holds a complete run of the
    same job (``runner.resume``; ``run.resume=false`` reruns it).
    """
    startup.restore_gc()  # start-up collected rarely (runner.startup.defer_gc)
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    resolved = None
    if multirun and not cfg.run.dry_run:
        # once for the job's identity and its typed configs (from the launcher when it has it)
        resolved = launcher.take_resolved(cfg) or _resolved_or_none(cfg)
        if _reuse_or_start(cfg, run_dir, resolved):
            return 0
    try:
        code = run_backtest(cfg, run_dir, quiet=multirun, shared=multirun, resolved=resolved)
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


def _resolved_or_none(cfg: DictConfig) -> dict | None:
    """Return the config resolved to plain containers, or None when an interpolation is broken
    (the run then reports it in one line)."""
    try:
        return check_interpolations(cfg)
    except UserFacingError:
        return None


def _reuse_or_start(cfg: DictConfig, run_dir: Path, resolved: dict | None = None) -> bool:
    """Return True when an earlier complete run of this job is reused; else clear the run dir."""
    try:
        _, version = job_cache.market_version(cfg.db.path)
        identity = resume.job_identity(cfg, version, job_cache.code_version(), resolved)
    except Exception:  # no readable market DB: the run itself reports it in one line
        resume.start_attempt(run_dir, None)
        return False
    summary = resume.reusable(run_dir, identity) if cfg.run.resume else None
    if summary is not None:
        resume.mark_reused(run_dir, identity)  # the sweep report lists it (no log: no handler yet)
        return True
    resume.start_attempt(run_dir, identity)
    return False


prepare_cli()
