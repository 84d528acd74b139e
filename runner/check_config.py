"""``python -m runner.check_config``: dry-run every experiment against a market DB (``make check-config``).

For each ``conf/experiment/<name>.yaml`` it composes ``+experiment=<name>`` (plus any extra
overrides), checks every component config (types, ranges, cross-field rules, ``run.*``), builds
every component (constructors do no I/O), opens the market DB read-only, checks the symbols,
dates and, for strategies that read analytics, that snapshots exist. Nothing is written: no run
dir, no results DB. Exit 0 when every experiment passes, 2 otherwise (one line per failure naming
the experiment and the key).

    python -m runner.check_config                                  # conf/experiment/* vs the demo DB
    python -m runner.check_config --db outputs/market/other.duckdb --experiment backtest
    python -m runner.check_config --config-dir /tmp/conf_copy market.chunk_size=500   # extra overrides
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

import runner.components_index  # noqa: F401 - fills the registry and ConfigStore before composing
from components.cli import EXIT_USER_ERROR, describe_config_error
from components.data.duckdb_client import get_connection
from components.data.market_db import has_table
from components.errors import UserFacingError
from components.registry import build
from runner.plan import Plan, make_plan, typed_configs

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
DEFAULT_DB = "outputs/market/demo.duckdb"
BUILT_GROUPS = (
    "market",
    "analytics",
    "strategy",
    "execution",
    "buffer",
    "broker",
    "sizing",
    "orders",
)


@dataclass
class CheckResult:
    experiment: str
    ok: bool
    message: str  # the plan when ok, else the error naming the key


def experiments(config_dir: Path) -> list[str]:
    """Return the experiment names of ``config_dir/experiment``, sorted."""
    return sorted(p.stem for p in (config_dir / "experiment").glob("*.yaml"))


def compose_experiment(config_dir: Path, name: str, overrides: Sequence[str]) -> DictConfig:
    """Compose ``+experiment=name`` with ``overrides`` from ``config_dir`` (no run, no output dir)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose("config", overrides=[f"+experiment={name}", "run.dry_run=true", *overrides])


def check_plan(cfg: DictConfig) -> Plan:
    """Validate ``cfg`` like a run would, up to the first bar; raise ``UserFacingError`` on a problem."""
    configs = typed_configs(cfg)
    components = {group: build(group, cfg[group]) for group in BUILT_GROUPS}
    con = get_connection(configs["db"].path, read_only=True)
    try:
        plan = make_plan(con, cfg, configs)
        if getattr(components["strategy"], "uses_analytics", False) and not _has_snapshots(
            con, plan
        ):
            raise UserFacingError(
                f"strategy.kind={configs['strategy'].kind} reads analytics snapshots, but the market DB "
                f"{configs['db'].path} has none before end={cfg.end}; compute them with "
                f"`python -m producers.analytics db.path={configs['db'].path}`."
            )
    finally:
        con.close()
    return plan


def _has_snapshots(con: Any, plan: Plan) -> bool:
    """Return True when at least one analytics snapshot is visible inside the run's window."""
    if not has_table(con, "analytics_snapshots"):
        return False
    end_us = plan.universe.end_us
    sql = "SELECT count(*) FROM analytics_snapshots" + (
        "" if end_us is None else " WHERE snapshot_ts < make_timestamptz($end_us)"
    )
    row = con.execute(sql, {} if end_us is None else {"end_us": end_us}).fetchone()
    return bool(row and row[0])


def check_experiment(config_dir: Path, name: str, overrides: Sequence[str]) -> CheckResult:
    """Compose and dry-run one experiment; return the outcome instead of raising."""
    try:
        plan = check_plan(compose_experiment(config_dir, name, overrides))
    except UserFacingError as exc:
        return CheckResult(name, False, str(exc))
    except Exception as exc:
        message = describe_config_error(exc)
        if message is None:
            raise
        message = message.removeprefix("configuration error: ").replace(
            "python -m runner.check_config --help", "python -m runner --help"
        )
        return CheckResult(name, False, _with_key(exc, message))
    finally:
        GlobalHydra.instance().clear()
    return CheckResult(name, True, plan.describe())


def _with_key(exc: BaseException, message: str) -> str:
    """Prefix the dotted key OmegaConf reported (``market.chunk_size``) when the message lacks it."""
    node: BaseException | None = exc
    while node is not None:
        key = getattr(node, "full_key", None)
        if key:
            return message if str(key) in message else f"{key}: {message}"
        node = node.__cause__ or node.__context__
    return message


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runner.check_config", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--db", default=DEFAULT_DB, help=f"market DB to dry-run against (default {DEFAULT_DB})"
    )
    parser.add_argument(
        "--config-dir", type=Path, default=CONF_DIR, help="config dir holding experiment/"
    )
    parser.add_argument(
        "--experiment", action="append", help="check only this experiment (repeatable)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra overrides applied to every experiment, key=value"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Check every experiment; print one line each; return the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    config_dir = args.config_dir.resolve()
    names = args.experiment or experiments(config_dir)
    if not names:
        print(
            f"error: check-config: no experiments in {config_dir / 'experiment'}", file=sys.stderr
        )
        return EXIT_USER_ERROR
    unknown = sorted(set(names) - set(experiments(config_dir)))
    if unknown:
        print(
            f"error: check-config: no experiment {', '.join(unknown)} in {config_dir / 'experiment'} "
            f"(known: {', '.join(experiments(config_dir))})",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    overrides = [f"db.path={args.db}", *args.overrides]
    print(
        f"check-config: {len(names)} experiment(s) from {config_dir / 'experiment'} against {args.db} (read-only)"
    )
    results = [check_experiment(config_dir, name, overrides) for name in names]
    width = max(len(n) for n in names)
    for r in results:
        print(f"  {'ok  ' if r.ok else 'FAIL'}  {r.experiment:<{width}}  {r.message}")
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(
            f"error: check-config: experiment {r.experiment} ({config_dir / 'experiment' / r.experiment}.yaml): "
            f"{r.message}",
            file=sys.stderr,
        )
    return EXIT_USER_ERROR if failed else 0


if __name__ == "__main__":
    sys.exit(main())
