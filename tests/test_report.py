"""What a run tells its user (issue 7): console lines, progress, runner.log, summary.md, equity.png."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from loguru import logger

from components.execution.records import TradeRow
from runner import outputs, progress
from tests.helpers import make_market_db, read_shared_csv, run_cli, run_in_process, synthetic_bars

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def goog_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(
        tmp_path_factory.mktemp("db") / "goog.duckdb", read_shared_csv("goog_daily_2004_2013.csv")
    )


@pytest.fixture(scope="module")
def goog_run(goog_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One in-process sma_cross run on GOOG, metrics lines every 1 ms of wall time."""
    run_dir = tmp_path_factory.mktemp("runs") / "goog"
    code, _summary = run_in_process(
        run_dir,
        [f"db.path={goog_db}", "symbols=[GOOG]", "run.plot=true", "run.metrics_every_s=0.001"],
    )
    logger.remove()
    assert code == 0
    return run_dir


# ------------------------------------------------------------------------------------- run dir


def test_run_when_completed_then_equity_png_and_summary_md_written(goog_run: Path) -> None:
    png = (goog_run / "equity.png").read_bytes()
    summary = (goog_run / "summary.md").read_text()

    assert png.startswith(PNG_MAGIC) and len(png) > 20_000
    assert "![equity and drawdown](equity.png)" in summary
    assert "| closed trades | 32 |" in summary
    assert "| total pnl | 66,275.00 |" in summary
    assert re.search(r"\| market DB \| `\S+goog\.duckdb` version 1 \|", summary)
    assert (
        "| GOOG | 2012-12-04T00:00:00+00:00 | 695 | 100 |" in summary
    )  # the position still open at the end


def test_run_log_when_completed_then_has_config_db_version_and_metrics_lines(
    goog_run: Path,
) -> None:
    log = (goog_run / "runner.log").read_text()

    assert f"(config {goog_run / '.hydra' / 'config.yaml'})" in log
    assert "resolved config:\n" in log and "metrics_every_s: 0.001" in log
    assert re.search(r"market DB \S+goog\.duckdb version 1 \(read-only\)", log)
    metrics = re.findall(
        r"metrics: steps [\d,]+/2,148, bars [\d,]+/2,148 \([\d.]+ %\), [\d,]+ bars/s, "
        r"elapsed \d+:\d\d:\d\d, ETA (\d+:\d\d:\d\d|\?), signals \d+, denied \d+, fills \d+, "
        r"kill switch active",
        log,
    )
    assert metrics, "no periodic metrics line in runner.log"
    assert re.search(r"metrics at end: steps 2,148/2,148, bars 2,148/2,148 \(100\.0 %\)", log)


# ------------------------------------------------------------------------------------- console


def test_console_when_run_in_subprocess_then_no_progress_bar_no_duplicates_and_report_named(
    goog_db: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"

    proc = run_cli(
        "runner",
        [
            "+experiment=backtest",
            f"db.path={goog_db}",
            "symbols=[GOOG]",
            f"hydra.run.dir={run_dir}",
            "run.plot=false",
        ],
    )

    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "\r" not in proc.stderr and "bars/s," not in proc.stderr  # stderr is a pipe: no bar
    assert len(lines) == len(set(lines)) == 4, lines  # plan, run dir, summary, report: each once
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d \| INFO    \| plan: 2148 bars, .* version 1 \(read-only\)", lines[0]
    )
    assert lines[1].endswith(
        f"| run dir {run_dir} (to halt: touch {run_dir / 'HALT'} or kill -USR1 "
        f"{lines[1].rsplit(' ', 1)[1]}"
    )
    assert "completed sma_cross: 32 trades, pnl 66,275.00" in lines[2]
    assert lines[3].endswith(
        f"| report {run_dir / 'summary.md'} | equity.png | trades.csv | results.duckdb in {run_dir}"
    )


def test_show_bar_when_stderr_not_a_tty_or_multirun_then_false(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())

    assert progress.show_bar("auto", quiet=False) is False
    assert progress.show_bar("auto", quiet=True) is False
    assert progress.show_bar("off", quiet=False) is False
    assert progress.show_bar("on", quiet=True) is True


def test_show_bar_when_stderr_is_a_tty_then_only_outside_multirun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Tty())

    assert progress.show_bar("auto", quiet=False) is True
    assert progress.show_bar("auto", quiet=True) is False


def test_bar_when_shown_then_bars_rate_eta_and_kill_switch_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(progress, "BAR_DELAY_S", 0.0)
    monitor = progress.make_progress("on", 1_000, quiet=False, total_steps=100)

    monitor.update(10, 100, "active")
    monitor.bar._bar.refresh()
    monitor.update(50, 500, "halted")
    monitor.bar._bar.refresh()
    text = stream.getvalue()
    monitor.close()

    assert re.search(
        r"backtest\s+10%\|.*\| 100/1\.00k bars \[\d\d:\d\d<.*bars/s, kill switch active\]", text
    )
    assert "500/1.00k bars" in text and "kill switch HALTED" in text


def test_monitor_when_interval_elapses_then_one_metrics_line_per_interval() -> None:
    now = [0.0]
    sink: list[str] = []
    logger.remove()
    logger.add(sink.append, level="DEBUG", format="{message}")
    monitor = progress.RunMonitor(
        progress._NoBar(), total_bars=1_000, total_steps=100, every_s=5.0, clock=lambda: now[0]
    )

    for step in range(1, 11):  # ten updates, one second apart
        now[0] = float(step)
        monitor.update(step * 10, step * 100, "active")

    assert [line.split(",")[0] for line in sink] == [
        "metrics: steps 50/100",
        "metrics: steps 100/100",
    ]
    assert sink[0].rstrip() == (
        "metrics: steps 50/100, bars 500/1,000 (50.0 %), 100 bars/s, elapsed 0:00:05, "
        "ETA 0:00:05, signals 0, denied 0, fills 0, kill switch active"
    )


# ------------------------------------------------------------------------------------- plot


def _summary(**extra: object) -> dict[str, object]:
    return {
        "run_id": "test",
        "strategy": "sma_cross",
        "symbols": [f"SYM{i}" for i in range(4)],
        "return_pct": 1.5,
        "n_trades": 0,
        "win_rate_pct": 0.0,
        "max_drawdown_pct": 2.0,
        "final_equity": 1_015_000.0,
        "initial_cash": 1_000_000.0,
        "open_positions": [],
        "status": "completed",
        "kill_switch": {"state": "active", "code": None},
    } | extra


def _trades(n: int, start: pd.Timestamp) -> list[TradeRow]:
    us = start.value // 1000
    return [
        TradeRow(
            i,
            "SYM0",
            us + (2 * i) * 60_000_000,
            100.0,
            us + (2 * i + 1) * 60_000_000,
            101.0,
            100,
            0.0,
            100.0 if i % 3 else -50.0,
            "signal",
        )
        for i in range(n)
    ]


def test_plot_equity_when_many_trades_then_written_with_per_period_panel(tmp_path: Path) -> None:
    bars = synthetic_bars(n_symbols=1, n_steps=2_000, holes=False)
    equity = pd.DataFrame(
        {"ts": bars["ts"], "equity": 1_000_000 + (bars["close"] - bars["close"].iloc[0]) * 100}
    )
    trades = _trades(outputs.MAX_MARKED_TRADES + 50, bars["ts"].iloc[0])

    written = outputs.plot_equity(
        tmp_path / "equity.png",
        equity,
        trades,
        _summary(n_trades=len(trades), symbols=[f"S{i}" for i in range(12)]),
    )

    assert written and (tmp_path / "equity.png").read_bytes().startswith(PNG_MAGIC)
    assert not (tmp_path / "equity.tmp.png").exists()


def test_plot_equity_when_no_equity_rows_then_nothing_written(tmp_path: Path) -> None:
    written = outputs.plot_equity(
        tmp_path / "equity.png", pd.DataFrame(columns=["ts", "equity"]), [], _summary()
    )

    assert written is False and not (tmp_path / "equity.png").exists()


def test_plot_title_when_many_symbols_then_counts_them_and_shows_return() -> None:
    title = outputs._title(_summary(symbols=[f"SYM{i:02d}" for i in range(10)], return_pct=-3.69))

    assert title == "sma_cross on 10 symbols (SYM00, SYM01, SYM02, ... SYM09): return -3.69 %"


def test_plot_subtitle_when_kill_switch_halted_then_says_so() -> None:
    subtitle = outputs._subtitle(
        _summary(status="halted", kill_switch={"state": "halted", "code": "MAX_DAILY_TRADES"})
    )

    assert "status HALTED, kill switch halted (MAX_DAILY_TRADES)" in subtitle


def test_plot_equity_when_kill_switch_tripped_then_written_with_event_line(tmp_path: Path) -> None:
    bars = synthetic_bars(n_symbols=1, n_steps=300, holes=False)
    equity = pd.DataFrame(
        {"ts": bars["ts"], "equity": 1_000_000 + (bars["close"] - bars["close"].iloc[0]) * 100}
    )
    events = pd.DataFrame(
        {"ts": [bars["ts"].iloc[100]], "state_to": ["halted"], "code": ["MAX_DRAWDOWN"]}
    )

    written = outputs.plot_equity(
        tmp_path / "equity.png",
        equity,
        _trades(3, bars["ts"].iloc[0]),
        _summary(n_trades=3, status="halted"),
        events,
    )

    assert written and (tmp_path / "equity.png").stat().st_size > 10_000


def test_kill_switch_events_when_no_results_db_then_empty_frame() -> None:
    assert list(outputs.kill_switch_events(None).columns) == ["ts", "state_to", "code"]


def test_loguru_lib_dirs_when_remembered_then_the_same_dirs_once_per_sys_path() -> None:
    """Issue 13: loguru's per-handler sysconfig scan is asked once per sys.path, same answer."""
    from loguru import _better_exceptions

    from runner.app import _remember_loguru_lib_dirs

    # Arrange
    formatter = _better_exceptions.ExceptionFormatter
    fresh = formatter._get_lib_dirs()
    # Act
    _remember_loguru_lib_dirs()
    first, second = formatter._get_lib_dirs(), formatter._get_lib_dirs()
    # Assert
    assert getattr(formatter._get_lib_dirs, "remembered", False)
    assert first == second and sorted(first) == sorted(fresh)


def test_defer_gc_when_start_up_ends_then_the_thresholds_are_restored_once() -> None:
    """Issue 13: start-up collects rarely; the first job restores the collector's thresholds."""
    import gc

    from runner import startup

    # Arrange
    before = gc.get_threshold()
    try:
        # Act
        startup.defer_gc()
        during = gc.get_threshold()
        startup.defer_gc()  # a second call keeps the first saved thresholds
        startup.restore_gc()
        after = gc.get_threshold()
        startup.restore_gc()  # a no-op now
    finally:
        gc.set_threshold(*before)
    # Assert
    assert during == startup.START_UP_GC_THRESHOLD
    assert after == before and gc.get_threshold() == before
