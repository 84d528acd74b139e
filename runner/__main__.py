"""``python -m runner +experiment=backtest``: the Hydra entry point of the backtest runner."""

from __future__ import annotations

from runner import startup

# first, before the slow imports: a signal during start-up is one line or a halt at the first bar
startup.install_handlers()
startup.pause("imports")

from pathlib import Path  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from components.cli import run_cli  # noqa: E402
from runner.entry import run_job  # noqa: E402
from runner.rundir import remove_stub  # noqa: E402

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> int:
    # the body lives in runner.entry: importable, so parallel launchers pickle it by reference
    return run_job(cfg)


if __name__ == "__main__":
    run_cli(main, on_refusal=remove_stub)  # a refused run leaves no stub run dir (runner.rundir)
