"""Derived job configs equal Hydra's own composition (issue 13: per-job overhead of sweeps)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import OmegaConf

from runner.fast_compose import FastSweepConfigLoader
from tests.helpers import CONF_DIR

BASE = ["+experiment=backtest", "db.path=/tmp/m.duckdb", "symbols=[GOOG]"]


def _loaders() -> tuple[object, object, object]:
    """Return (Hydra's loader, the fast loader around it, the multirun master config)."""
    loader = GlobalHydra.instance().config_loader()
    master = loader.load_configuration(
        config_name="config",
        overrides=["hydra.sweep.dir=/tmp/sweep", *BASE],
        run_mode=RunMode.MULTIRUN,
    )
    return loader, FastSweepConfigLoader(loader), master


def _container(cfg: object) -> dict:
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[arg-type]


JOBS = [
    [*BASE, "strategy.fast=5", "strategy.slow=20"],
    [*BASE, "strategy.fast=7", "strategy.slow=20"],  # one value differs
    [*BASE, "strategy.fast=9", "strategy.slow=60"],  # both differ
    [*BASE[:2], "symbols=[AAPL,MSFT]", "strategy.fast=5", "strategy.slow=20"],  # a list value
    [*BASE, "strategy.fast=5", "strategy.slow=20", "market.chunk_size=100"],  # another shape
    [*BASE, "strategy.fast=6", "strategy.slow=20", "market.chunk_size=10000"],
    [*BASE, "strategy.fast=6", "strategy.slow=20", "start='2010-01-01'"],  # quoted string
    [*BASE, "strategy=rsi_revert", "strategy.period=9"],  # a group choice: composed by Hydra
    [*BASE, "strategy=rsi_revert", "strategy.period=21"],
]


def test_fast_compose_when_jobs_differ_in_plain_values_then_derived_configs_equal_hydras() -> None:
    """Every job config, derived or composed, equals what Hydra composes for the same overrides."""
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader, fast, master = _loaders()
        # Act
        pairs = [
            (fast.load_sweep_config(master, job), loader.load_sweep_config(master, job))
            for job in JOBS
        ]
    # Assert
    for job, (derived, composed) in zip(JOBS, pairs, strict=True):
        assert _container(derived) == _container(composed), job
    assert fast.derived >= 5 and fast.composed <= 4  # the fast path was actually taken


def test_fast_compose_when_a_value_has_the_wrong_type_then_hydras_error_is_raised() -> None:
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        _, fast, master = _loaders()
        fast.load_sweep_config(master, [*BASE, "strategy.fast=5"])
        # Act / Assert
        with pytest.raises(ConfigCompositionException, match=r"strategy\.fast=abc"):
            fast.load_sweep_config(master, [*BASE, "strategy.fast=abc"])


def test_fast_compose_when_a_key_is_unknown_then_hydras_error_is_raised(tmp_path: Path) -> None:
    # Arrange
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        _, fast, master = _loaders()
        fast.load_sweep_config(master, [*BASE, "strategy.fast=5"])
        # Act / Assert
        with pytest.raises(ConfigCompositionException, match=r"strategy\.fsat"):
            fast.load_sweep_config(master, [*BASE, "strategy.fsat=5"])
