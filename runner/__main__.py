"""``python -m runner +experiment=backtest``: the Hydra entry point of the backtest runner."""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from loguru import logger
from omegaconf import DictConfig

import runner.components_index  # noqa: F401 - fills the registry and ConfigStore before composing
from components.cli import run_cli
from components.errors import UserFacingError
from runner.app import run_backtest

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> int:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        code = run_backtest(cfg, run_dir, quiet=multirun)
    except UserFacingError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line on the console, the traceback in runner.log
        logger.error("run failed: {}: {} (traceback in {})", type(exc).__name__, exc, run_dir / "runner.log")
        raise SystemExit(1) from None
    if code != 0:
        raise SystemExit(code)
    return code


if __name__ == "__main__":
    run_cli(main)
