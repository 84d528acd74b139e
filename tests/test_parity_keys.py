"""Performance vs behaviour keys are declared once (conf/parity.yaml) and cover every performance knob."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from components.registry import entries
from runner.parity import declared_keys, flatten, is_performance_key, override_key, split_config
from tests.helpers import CONF_DIR, compose_config

PERFORMANCE_GROUPS = ("market", "analytics", "buffer")
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
SWEEP_MARKET_OPTIONS = sorted(p.stem for p in (CONF_DIR / "sweep" / "market").glob("*.yaml"))


def _option_keys(path: Path, group: str) -> list[str]:
    node = OmegaConf.to_container(OmegaConf.load(path))
    assert isinstance(node, dict)
    node.pop("defaults", None)
    return [f"{group}.{key}" for key in flatten(node)]


@pytest.mark.parametrize("group", PERFORMANCE_GROUPS)
def test_parity_keys_when_a_performance_group_option_sets_a_key_then_it_is_declared(
    group: str,
) -> None:
    """Every key that any option of market/, analytics/ or buffer/ sets is a performance key."""
    # Arrange
    options = sorted((CONF_DIR / group).glob("*.yaml"))
    assert options, f"conf/{group}/ has no options"
    # Act
    undeclared = [
        key for path in options for key in _option_keys(path, group) if not is_performance_key(key)
    ]
    # Assert
    assert undeclared == [], (
        f"declare these in conf/parity.yaml (performance:) or move them out of conf/{group}/"
    )


@pytest.mark.parametrize("group", PERFORMANCE_GROUPS)
def test_parity_keys_when_a_performance_component_is_registered_then_its_fields_are_declared(
    group: str,
) -> None:
    """Fields of registered configs count too (a default not written in YAML can still be overridden)."""
    fields = [
        f"{group}.{f.name}"
        for e in entries()
        if e.group == group
        for f in dataclasses.fields(e.config_cls)
    ]
    assert fields
    assert [f for f in fields if not is_performance_key(f)] == []


def test_parity_keys_when_a_key_is_not_declared_then_it_is_behaviour() -> None:
    # Arrange
    behaviour = [
        "strategy.fast",
        "strategy.kind",
        "execution.kill_switch.max_daily_trades",
        "db.path",
        "symbols",
        "start",
        "end",
        "broker.cash",
        "run.dry_run",
        "run.halt_file",
        "market.lookahead_bars",
    ]
    performance = [
        "market.kind",
        "market.chunk_size",
        "market.validate",
        "analytics.kind",
        "buffer.kind",
        "buffer.batch_size",
        "run.progress",
        "run.log_level",
        "run.plot",
        "run.metrics_every_s",
        "run.name",
        "hydra.launcher.n_jobs",
        "hydra.sweep.dir",
    ]
    # Act / Assert
    assert [k for k in behaviour if is_performance_key(k)] == []
    assert [k for k in performance if not is_performance_key(k)] == []


@pytest.mark.parametrize(
    ("override", "key", "performance"),
    [
        ("market.chunk_size=100,1000", "market.chunk_size", True),
        ("market=direct", "market", True),
        ("+sweep/market=chunked_100", "sweep.market", True),
        ("hydra/launcher=joblib", "hydra.launcher", True),
        ("++strategy.fast=5", "strategy.fast", False),
        (
            "~execution.kill_switch.max_daily_trades",
            "execution.kill_switch.max_daily_trades",
            False,
        ),
    ],
)
def test_parity_keys_when_an_override_is_classified_then_its_key_is_normalised(
    override: str, key: str, performance: bool
) -> None:
    assert override_key(override) == key
    assert is_performance_key(key) is performance


def test_parity_keys_when_parity_file_is_read_then_every_section_lists_keys() -> None:
    keys = declared_keys()
    assert "market.chunk_size" in keys and "buffer.batch_size" in keys and "run.progress" in keys
    assert all(k == k.strip() and " " not in k for k in keys)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_parity_keys_when_an_experiment_composes_then_split_separates_performance_keys(
    experiment: str,
) -> None:
    # Arrange
    cfg = compose_config([f"+experiment={experiment}"])
    # Act
    behaviour, performance = split_config(flatten(OmegaConf.to_container(cfg, resolve=False)))
    # Assert
    assert {"market.kind", "analytics.kind", "buffer.batch_size", "run.name"} <= set(performance)
    assert "strategy.kind" in behaviour and "db.path" in behaviour
    assert not any(k.startswith(("market.", "analytics.", "buffer.")) for k in behaviour)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("option", SWEEP_MARKET_OPTIONS)
def test_sweep_preset_when_combined_with_an_experiment_then_its_market_choice_wins(
    experiment: str, option: str
) -> None:
    """An experiment that pinned `override /market: ...` would silently beat +sweep=performance (issue 5)."""
    # Arrange
    expected_kind = option.split("_")[0]
    expected_chunk = int(option.split("_")[1]) if "_" in option else None
    # Act
    cfg = compose_config([f"+experiment={experiment}", f"+sweep/market={option}"])
    # Assert
    assert cfg.market.kind == expected_kind
    assert cfg.market.get("chunk_size") == expected_chunk


def test_sweep_preset_when_composed_then_it_sweeps_only_performance_keys() -> None:
    # Arrange
    preset = OmegaConf.load(CONF_DIR / "sweep" / "performance.yaml")
    # Act
    keys = [str(k) for k in preset.hydra.sweeper.params]
    option_keys = [
        k
        for option in SWEEP_MARKET_OPTIONS
        for k in _option_keys(CONF_DIR / "sweep" / "market" / f"{option}.yaml", "")
    ]
    # Assert
    assert {"+sweep/market", "analytics", "buffer.batch_size"} <= set(keys)
    assert [k for k in keys if not is_performance_key(k)] == []
    assert [k.lstrip(".") for k in option_keys if not is_performance_key(k.lstrip("."))] == []


BEHAVIOUR_GROUPS = ("broker", "sizing", "orders")


def _dataclass_keys(cls: type, prefix: str) -> list[str]:
    keys = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            keys += _dataclass_keys(type(default), f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def test_parity_keys_when_an_execution_key_is_registered_then_it_is_a_listed_behaviour_key() -> (
    None
):
    """Issue 10: every broker/sizing/orders key is behaviour, listed in parity.yaml's behaviour:."""
    # Arrange
    listed = set(OmegaConf.load(CONF_DIR / "parity.yaml").behaviour)
    keys = (
        {
            key
            for e in entries()
            if e.group in BEHAVIOUR_GROUPS
            for key in _dataclass_keys(e.config_cls, f"{e.group}.")
        }
        | set(BEHAVIOUR_GROUPS)
        | {"strategy.short"}
    )
    # Act / Assert
    assert sorted(keys - listed) == []
    assert [k for k in keys | listed if is_performance_key(k)] == []
    assert {"broker.commission.rate", "broker.spread", "orders.stop_loss", "sizing.units"} <= keys


def test_declared_keys_when_read_with_libyaml_then_the_same_as_omegaconf_reads_them() -> None:
    from omegaconf import OmegaConf

    from runner.parity import PARITY_FILE, declared_keys

    # Arrange
    data = OmegaConf.to_container(OmegaConf.load(PARITY_FILE))
    # Act / Assert
    assert declared_keys() == tuple(
        str(k) for section in ("performance", "display") for k in data.get(section) or []
    )
