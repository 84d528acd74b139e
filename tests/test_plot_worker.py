"""The sweep report's figures drawn by a forked helper process (runner/plot_worker.py, issue 13)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import plot_worker, sweep, sweep_stats
from runner.sweep import JobRow

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the helper is forked (POSIX only)")


def _rows(tmp: Path) -> list[JobRow]:
    rows = []
    for num, (fast, slow) in enumerate([(5, 30), (5, 40), (10, 30), (10, 40)]):
        run_dir = tmp / str(num)
        run_dir.mkdir(parents=True, exist_ok=True)
        rows.append(
            JobRow(
                num=num,
                run_dir=run_dir,
                overrides=[f"strategy.fast={fast}", f"strategy.slow={slow}"],
                status="completed",
                digest=f"d{num}",
                metrics={"bars_per_second": 1000.0 + num, "peak_rss_mb": 200.0},
                behaviour={"strategy.fast": fast, "strategy.slow": slow},
                group=f"B{num}",
                stats={"sharpe": 0.1 * num},
            )
        )
    return rows


def _fails() -> bool:
    raise RuntimeError("a figure that cannot be drawn")


@pytest.fixture
def worker() -> Iterator[plot_worker.PlotWorker]:
    helper = plot_worker.PlotWorker()
    assert helper.start()
    yield helper
    helper.stop()


def test_draw_when_helper_runs_then_every_figure_is_written(
    worker: plot_worker.PlotWorker, tmp_path: Path
) -> None:
    # Arrange
    rows = _rows(tmp_path)
    keys = sweep_stats.varying_behaviour_keys(rows)
    report = sweep.Report(tmp_path, rows, [], "batched", False)
    # Act
    drawn = worker.draw(
        [
            (sweep.plot_report, (report, tmp_path / "report.png")),
            (sweep_stats.plot_heatmap, (rows, keys, "sharpe", tmp_path / "heatmap.png")),
        ]
    )
    # Assert
    assert drawn == [True, True]
    assert (tmp_path / "report.png").stat().st_size > 1000
    assert (tmp_path / "heatmap.png").stat().st_size > 1000


def test_draw_when_a_figure_raises_then_none_for_it_and_the_helper_keeps_serving(
    worker: plot_worker.PlotWorker, tmp_path: Path
) -> None:
    # Arrange
    rows = _rows(tmp_path)
    keys = sweep_stats.varying_behaviour_keys(rows)
    # Act
    first = worker.draw([(_fails, ())])
    second = worker.draw([(sweep_stats.plot_heatmap, (rows, keys, "sharpe", tmp_path / "h.png"))])
    # Assert
    assert first == [None]
    assert second == [True]


def test_draw_when_helper_was_killed_then_none_and_stopped(
    worker: plot_worker.PlotWorker, tmp_path: Path
) -> None:
    # Arrange
    assert worker.pid is not None
    os.kill(worker.pid, 9)
    os.waitpid(worker.pid, 0)
    # Act
    drawn = worker.draw([(_fails, ())])
    # Assert
    assert drawn == [None]
    assert not worker.alive


def test_write_report_when_helper_draws_then_same_report_as_in_process(tmp_path: Path) -> None:
    """The helper changes where the figures are drawn, never what the report says."""
    # Arrange
    rows = _rows(tmp_path / "sweep")
    for row in rows:  # write_report reads the jobs back from their dirs
        (row.run_dir / ".hydra").mkdir()
        (row.run_dir / ".hydra" / "overrides.yaml").write_text(
            "".join(f"- {o}\n" for o in row.overrides)
        )
        (row.run_dir / ".hydra" / "config.yaml").write_text(
            "strategy:\n  fast: {}\n  slow: {}\n".format(*[o.split("=")[1] for o in row.overrides])
        )
        (row.run_dir / "summary.json").write_text(
            json.dumps(
                {
                    "status": "completed",
                    "digest": f"d{row.num}",
                    "stats": {"sharpe": 0.1 * row.num},
                    "metrics": {"bars_per_second": 1000.0},
                }
            )
        )
    sweep_dir = tmp_path / "sweep"
    # Act
    in_process = sweep.write_report(sweep_dir, speed_plot=True).rows
    md_in_process = (sweep_dir / "sweep_report.md").read_text()
    (sweep_dir / "sweep_heatmap.png").unlink()
    assert sweep._PLOTTER.start()
    try:
        helped = sweep.write_report(sweep_dir, speed_plot=True).rows
    finally:
        sweep._PLOTTER.stop()
    # Assert
    assert (sweep_dir / "sweep_report.md").read_text() == md_in_process
    assert "sweep_heatmap.png" in md_in_process and "sweep_report.png" in md_in_process
    assert (sweep_dir / "sweep_heatmap.png").stat().st_size > 1000
    assert [r.digest for r in helped] == [r.digest for r in in_process]


@pytest.mark.parametrize(
    ("performance", "keys", "speed_plot", "expected"),
    [
        ({}, 2, None, ["plot_heatmap"]),  # a behaviour grid: the heatmap only
        ({"market.chunk_size": "vary"}, 2, None, ["plot_report", "plot_heatmap"]),  # parity sweep
        ({}, 1, None, ["plot_report"]),  # no heatmap: the speed figure, so there is one
        ({}, 2, True, ["plot_report", "plot_heatmap"]),
        ({"market.chunk_size": "vary"}, 2, False, ["plot_heatmap"]),
    ],
)
def test_figures_when_speed_plot_is_auto_then_drawn_for_parity_sweeps_or_without_heatmap(
    tmp_path: Path, performance: dict, keys: int, speed_plot: bool | None, expected: list[str]
) -> None:
    """Issue 13: sweep_report.png (bars/s per job) by default only where speed is compared."""
    # Arrange
    rows = _rows(tmp_path)
    for row in rows:
        if performance:
            row.performance = {"market.chunk_size": 100 * (row.num % 2 + 1)}
        if keys == 1:
            row.behaviour = {"strategy.fast": row.behaviour["strategy.fast"]}
    report = sweep.Report(tmp_path, rows, [], "batched", False, "sharpe")
    # Act
    figures = sweep._figures(report, speed_plot)
    # Assert
    assert [function.__name__ for function, _ in figures] == expected


def test_plot_worker_when_discarded_while_warming_up_then_gone_at_once() -> None:
    """Issue 13: a helper started early and not wanted (plot=false) is killed and reaped."""
    # Arrange
    worker = plot_worker.PlotWorker()
    assert worker.start()
    pid = worker.pid
    # Act
    worker.discard()
    # Assert
    assert worker.pid is None and not worker.alive
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped
