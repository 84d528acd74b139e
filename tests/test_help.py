"""``python -m runner --help`` (conf/hydra/help/runner.yaml): groups, options, keys and examples that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tests.helpers import CONF_DIR, compose_config, run_cli

HELP_FILE = CONF_DIR / "hydra" / "help" / "runner.yaml"
GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _section(text: str, title: str) -> str:
    return text.split(f"== {title}", 1)[1].split("\n== ", 1)[0]


@pytest.fixture(scope="module")
def help_text() -> str:
    proc = run_cli("runner", ["--help", "market=direct"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout


def test_help_when_asked_then_every_group_listed_with_every_option_file(help_text: str) -> None:
    groups = _section(help_text, "Config groups")
    listed = {
        line.split()[0]: line
        for line in groups.splitlines()
        if line.startswith("  ") and line.strip()
    }

    assert sorted(listed) == GROUPS
    for group in GROUPS:
        for option in _options(group):
            assert re.search(rf"(^|\s){option}(\s|$)", listed[group]), (
                f"{group}={option} missing from --help"
            )
    assert "_schema" not in help_text  # ConfigStore schema nodes are not options


def test_help_when_overrides_given_then_current_config_applies_them(help_text: str) -> None:
    config = _section(help_text, "Current config")

    assert "market:\n  kind: direct\n  validate: true\n" in config
    assert "kill_switch:\n    max_daily_trades: null" in config


def test_help_when_asked_then_examples_halting_and_exit_codes_shown(help_text: str) -> None:
    assert "python -m runner -m +experiment=backtest market.chunk_size=100,1000,10000" in help_text
    assert (
        "python -m runner +experiment=backtest execution.kill_switch.max_daily_trades=5"
        in help_text
    )
    assert "touch <run dir>/HALT, or kill -USR1 <pid>" in help_text
    assert re.search(r"Exit 0 .*\| 1 .*\n\s+2 bad input or configuration", help_text)


def _keys_in(text: str) -> set[str]:
    """Return the dotted keys of every ``key=value`` token in the template (not group=option)."""
    tokens = re.findall(r"(?<![\w./+-])([a-z_]+(?:\.[a-z_]+)+)=", text)
    return set(tokens)


def test_help_template_when_keys_named_then_each_exists_in_the_composed_config(
    tmp_path: Path,
) -> None:
    template = yaml.safe_load(HELP_FILE.read_text())["template"]  # raw: ${hydra.help...} stays
    cfg = compose_config([f"db.path={tmp_path / 'm.duckdb'}"])
    strategies = {
        name: compose_config([f"strategy={name}"]).strategy for name in _options("strategy")
    }

    keys = _keys_in(template) - {"hydra.run.dir"}
    assert {
        "market.chunk_size",
        "execution.kill_switch.max_daily_trades",
        "run.dry_run",
        "db.path",
    } <= keys
    for key in sorted(keys):
        if key.startswith("strategy."):
            field = key.split(".", 1)[1]
            assert any(field in node for node in strategies.values()), (
                f"--help names unknown key {key}"
            )
        else:
            assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", (
                f"--help names unknown key {key}"
            )
