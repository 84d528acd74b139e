"""Root and run-level config schemas, registered in Hydra's ConfigStore before composing."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

PROGRESS_MODES = ("auto", "on", "off")
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
_UID = f"{os.getpid()}{secrets.token_hex(2)}"


@dataclass
class RunConfig:
    name: str = "backtest"  # names the run directory: outputs/<name>/<date>/<time>-<unique>
    dry_run: bool = False  # compose, validate, open the market DB read-only, print the plan; no run
    progress: str = "auto"  # auto (bar on a terminal, quiet otherwise) | on | off
    halt_file: str = "HALT"  # create this file in the run dir to activate the kill switch mid-run
    log_level: str = "INFO"  # console log level; runner.log always gets DEBUG
    plot: bool | None = None  # write equity.png; null = yes for a single run, no in multirun jobs
    html: bool | None = None  # write report.html; null = yes for a single run, no in multirun jobs
    # write summary.md and metrics.json (summary.json holds the same figures); null = yes for a
    # single run, no in multirun jobs (the sweep report lists every job's figures)
    extras: bool | None = None
    resume: bool = True  # multirun: reuse jobs of the same sweep dir that completed with the same behaviour config, DB version and code
    metrics_every_s: float = 5.0  # seconds between metrics lines in runner.log

    def __post_init__(self) -> None:
        if self.progress not in PROGRESS_MODES:
            raise ValueError(
                f"run.progress must be one of {', '.join(PROGRESS_MODES)}, was {self.progress!r}; "
                "e.g. run.progress=off"
            )
        if str(self.log_level).upper() not in LOG_LEVELS:
            raise ValueError(
                f"run.log_level must be one of {', '.join(LOG_LEVELS)} (any case), was {self.log_level!r}; "
                "e.g. run.log_level=DEBUG"
            )
        name = str(self.halt_file)
        if not name.strip() or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(
                f"run.halt_file must be a file name inside the run dir, was {self.halt_file!r}; "
                "e.g. run.halt_file=HALT"
            )
        if not self.metrics_every_s > 0:
            raise ValueError(
                f"run.metrics_every_s must be a positive number of seconds, was {self.metrics_every_s}; "
                "e.g. run.metrics_every_s=5"
            )


@dataclass
class RootConfig:
    db: Any = None
    market: Any = None
    analytics: Any = None
    strategy: Any = None
    execution: Any = None
    buffer: Any = None
    broker: Any = None
    sizing: Any = None  # how insights become quantities (conf/sizing/)
    orders: Any = None  # brackets attached to every entry (conf/orders/)
    symbols: Any = None  # list of symbols, e.g. [GOOG,AAPL]; null = every symbol in the market DB
    start: str | None = (
        None  # first timestamp to trade, ISO-8601 (UTC if no offset); null = from the start
    )
    end: str | None = (
        None  # last timestamp, inclusive (a bare date includes that whole day); null = all
    )
    run: RunConfig = field(default_factory=RunConfig)


def register_root() -> None:
    """Register the root schema and the ``uid`` resolver (unique run-dir suffix)."""
    ConfigStore.instance().store(name="base_config", node=RootConfig)
    if not OmegaConf.has_resolver("uid"):
        OmegaConf.register_new_resolver("uid", lambda: _UID, use_cache=True)
