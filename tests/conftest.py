"""Shared fixtures. Real DuckDB files in tmp_path, no mocks; global state reset per test (STYLE P10)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hypothesis import settings
from loguru import logger

import runner.components_index  # noqa: F401 - fills the registry and ConfigStore before composing

# CI replays the same examples every run (a failure there must be reproducible, not luck);
# local runs keep exploring new random examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "conf"
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(autouse=True)
def _reset_global_state() -> None:
    """Reset Hydra, loguru and test-only registry entries so nothing leaks between tests."""
    from components import registry

    entries = dict(registry._ENTRIES)
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()
    logger.remove()
    registry._ENTRIES.clear()
    registry._ENTRIES.update(entries)
