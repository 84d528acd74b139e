"""Registry: every experiment composes and builds; unknown kinds get a helpful message (STYLE P4, P10)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import registry
from components.errors import ConfigError, UnknownComponentError
from tests.helpers import CONF_DIR, compose_config

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
GROUPS = (
    "db",
    "market",
    "analytics",
    "strategy",
    "execution",
    "buffer",
    "broker",
    "sizing",
    "orders",
)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_when_composed_then_every_group_builds(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config([f"+experiment={experiment}", f"db.path={tmp_path / 'm.duckdb'}"])
    for group in GROUPS:
        assert registry.build(group, cfg[group]) is not None  # constructors do no I/O (P5)


@pytest.mark.parametrize("group", ["market", "analytics", "strategy", "buffer"])
def test_every_option_file_when_selected_then_builds(group: str) -> None:
    for option in sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")):
        cfg = compose_config([f"{group}={option}"])
        assert registry.build(group, cfg[group]) is not None


def test_lookup_when_kind_misspelt_then_lists_known_and_suggests() -> None:
    with pytest.raises(
        UnknownComponentError,
        match=re.escape(
            "market: no component registered as kind='chunkd' (known: chunked, direct). Did you mean 'chunked'? "
            "Pick one with `market=<name>` or fix `kind:` in conf/market/."
        ),
    ):
        registry.lookup("market", "chunkd")


@dataclass
class _DupConfig:
    kind: str = "dup_test"


def test_register_when_duplicate_kind_then_rejected() -> None:
    @registry.register("market", "dup_test", _DupConfig)
    def first(config: _DupConfig) -> _DupConfig:
        return config

    try:
        with pytest.raises(ValueError, match="already registered"):

            @registry.register("market", "dup_test", _DupConfig)
            def second(config: _DupConfig) -> _DupConfig:
                return config
    finally:
        registry.unregister("market", "dup_test")


def test_typed_config_when_cross_field_rule_broken_then_config_error_names_key() -> None:
    cfg = compose_config(["strategy.fast=40"])
    with pytest.raises(
        ConfigError, match=r"^strategy.fast must be >= 1 and below strategy.slow \(30\), was 40"
    ):
        registry.build("strategy", cfg.strategy)


FORBIDDEN_IMPORTS = {  # package -> top-level packages it must never import (DESIGN sections 2-3)
    "runner": {"producers"},
    "components": {"runner", "producers"},
    "producers": {"runner"},
}


def test_packages_when_scanned_then_import_boundaries_hold() -> None:
    """components never imports runner or producers; producers never runner; runner never producers."""
    import ast

    repo = CONF_DIR.parent
    offenders = []
    for package, forbidden in FORBIDDEN_IMPORTS.items():
        for path in (repo / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                offenders += [
                    f"{path.relative_to(repo)}: {n}" for n in names if n.split(".")[0] in forbidden
                ]
    assert offenders == []


def _group_files() -> list[Path]:
    return sorted(p for group in GROUPS for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("path", _group_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_group_yaml_when_it_spells_out_a_default_then_it_equals_the_config_class_default(
    path: Path,
) -> None:
    """A group file shows its defaults for users; the registered dataclass owns them. They may not
    drift: every value the YAML sets equals the dataclass default at the same key."""
    import dataclasses

    from omegaconf import OmegaConf

    import runner.components_index  # noqa: F401  (registers every built-in kind)

    node = OmegaConf.to_container(OmegaConf.load(path))
    assert isinstance(node, dict)
    node.pop("defaults", None)
    entry = registry.lookup(path.parent.name, node["kind"])
    defaults = dataclasses.asdict(entry.config_cls())

    def leaves(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = []
        for key, value in tree.items():
            if isinstance(value, dict):
                out.extend(leaves(value, f"{prefix}{key}."))
            else:
                out.append((f"{prefix}{key}", value))
        return out

    def at(tree: dict, dotted: str) -> object:
        for part in dotted.split("."):
            tree = tree[part]
        return tree

    for key, value in leaves(node):
        where = f"conf/{path.parent.name}/{path.name}"
        assert value == at(defaults, key), f"{where}: {key}: YAML {value!r} != the default"


def _entries_with_defaults() -> list[registry.Entry]:
    out = []
    for entry in registry.entries():
        try:
            entry.config_cls()
        except Exception:  # a config without defaults for every field
            continue
        out.append(entry)
    return out


_VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=4),
    st.booleans(),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(
    entry=st.sampled_from(_entries_with_defaults()),
    picks=st.lists(st.tuples(st.integers(0, 50), _VALUES), max_size=3),
)
def test_direct_typed_when_built_from_a_plain_dict_then_equals_the_schema_merge(
    entry: registry.Entry, picks: list[tuple[int, object]]
) -> None:
    """Issue 13: the direct build is the schema path's object, or declines (never differs)."""
    # Arrange
    from dataclasses import asdict

    from omegaconf import OmegaConf

    node = asdict(entry.config_cls())
    # every leaf, nested configs' fields included (execution.kill_switch.*, broker.commission.*)
    names = [p for p in _leaf_paths(node) if p != ("kind",)]
    for index, value in picks:
        if names:
            holder = node
            path = names[index % len(names)]
            for part in path[:-1]:
                holder = holder[part]
            holder[path[-1]] = value
    try:
        expected = registry._build_typed(entry.group, entry.kind, entry, OmegaConf.create(node))
    except ConfigError:
        expected = None
    # Act
    got = registry.direct_typed(entry, node)
    # Assert
    if got is not None:
        assert expected is not None
        assert got == expected
        assert _types(asdict(got)) == _types(asdict(expected))


def _leaf_paths(node: dict, path: tuple = ()) -> list[tuple]:
    out: list[tuple] = []
    for key, value in node.items():
        if isinstance(value, dict):
            out += _leaf_paths(value, (*path, key))
        else:
            out.append((*path, key))
    return out


def _types(node: object) -> object:
    if isinstance(node, dict):
        return {k: _types(v) for k, v in node.items()}
    return type(node)
