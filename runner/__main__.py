"""``python -m runner +experiment=backtest``: the Hydra entry point of the backtest runner."""

from __future__ import annotations

from runner import startup

# first, before the slow imports: a signal during start-up is one line or a halt at the first bar
# (only as ``python -m runner``: a test importing this module keeps its own handlers)
if __name__ == "__main__":
    startup.install_handlers()
    startup.defer_gc()  # collect rarely until the first job (runner.entry.run_job restores it)
with startup.exit_on_interrupt():
    startup.pause("imports")
    from pathlib import Path

    import hydra
    from omegaconf import DictConfig

    from components.cli import run_cli
    from runner.entry import run_job
    from runner.rundir import remove_stub

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> int:
    # the body lives in runner.entry: importable, so parallel launchers pickle it by reference
    return run_job(cfg)


if __name__ == "__main__":
    import sys

    from runner.fast_compose import reuse_mode_probe_for_run, skip_mode_probe_for_multirun

    # no composition just to read hydra.mode (a multirun), or none twice (a single run)
    if skip_mode_probe_for_multirun(sys.argv[1:]):
        from runner.sweep import start_plot_worker_early

        start_plot_worker_early()  # its matplotlib warm-up overlaps Hydra's composition
    else:
        reuse_mode_probe_for_run(sys.argv[1:])
    run_cli(main, on_refusal=remove_stub)  # a refused run leaves no stub run dir (runner.rundir)
    startup.fast_exit(0)  # success: skip the interpreter's teardown of a full heap
