"""``python -m runner +experiment=backtest``: the Hydra entry point of the backtest runner."""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from components.cli import run_cli
from runner.entry import run_job

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> int:
    # the body lives in runner.entry: importable, so parallel launchers pickle it by reference
    return run_job(cfg)


if __name__ == "__main__":
    run_cli(main)
