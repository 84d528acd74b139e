"""report.html renders in headless Chromium with its charts and tables (issue 12; slow).

Debian's ``chromium`` is installed by ``.ci/run``; without it these tests skip with the command to
install it. The checks read the DOM after the page's scripts ran (``--dump-dom``), not pixels.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from runner.report_html import thin_indices
from tests.helpers import make_market_db, read_shared_csv, run_in_process, synthetic_bars

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=30000"]


def _chromium(*args: str) -> str:
    if CHROMIUM is None:
        pytest.skip("chromium not installed: apt-get install -y chromium (done by .ci/run)")
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=180, check=True
    )
    return proc.stdout


def test_thin_indices_when_long_series_then_extremes_and_ends_kept() -> None:
    rng = np.random.default_rng(1)
    values = np.cumsum(rng.normal(size=100_000))
    keep = thin_indices(values, 2000)
    assert len(keep) <= 2002 and keep[0] == 0 and keep[-1] == len(values) - 1
    assert values.argmin() in keep and values.argmax() in keep
    assert np.all(np.diff(keep) > 0)


@pytest.mark.slow
def test_report_html_when_goog_run_then_chromium_renders_charts_and_tables(tmp_path: Path) -> None:
    # Arrange
    db = make_market_db(tmp_path / "goog.duckdb", read_shared_csv("goog_daily_2004_2013.csv"))
    code, summary = run_in_process(tmp_path / "run", [f"db.path={db}", "symbols=[GOOG]"])
    page = tmp_path / "run" / "report.html"
    # Act
    dom = _chromium("--dump-dom", page.as_uri())
    _chromium("--window-size=1400,2400", f"--screenshot={tmp_path / 'shot.png'}", page.as_uri())
    # Assert
    assert code == 0 and page.stat().st_size < 5_000_000
    assert 'data-rendered="yes"' in dom, re.findall(r'id="load-error">[^<]*', dom)
    for chart in ("equity-chart", "price-chart"):
        block = dom.split(f'id="{chart}"', 1)[1].split('<div id="', 1)[0]
        assert block.count('class="main-svg"') >= 2, chart
    assert dom.count('class="scatterlayer') >= 2
    assert ">buy &amp; hold (+522.1 %) (right axis)<" in dom  # legend of the equity chart
    stats_rows = dom.split('id="stats-table"', 1)[1].split("</table>", 1)[0].count("<tr>")
    assert stats_rows == 1 + 30  # header + every statistic
    trades = dom.split('id="trades-table"', 1)[1].split("</table>", 1)[0]
    assert trades.count('<tr class="') == summary["n_trades"] == 32
    assert 'id="events-none"' in dom
    assert (tmp_path / "shot.png").stat().st_size > 50_000


@pytest.mark.slow
def test_report_html_when_halted_multi_symbol_run_then_symbol_menu_and_events_table(
    tmp_path: Path,
) -> None:
    # Arrange
    db = make_market_db(tmp_path / "m.duckdb", synthetic_bars(3, 1500, seed=4))
    code, summary = run_in_process(
        tmp_path / "run",
        [
            f"db.path={db}",
            "strategy.fast=3",
            "strategy.slow=8",
            "execution.kill_switch.max_daily_trades=10",
        ],
    )
    # Act
    dom = _chromium("--dump-dom", (tmp_path / "run" / "report.html").as_uri())
    # Assert
    assert code == 0 and summary["status"] == "halted"
    assert 'data-rendered="yes"' in dom
    menu = dom.split('class="updatemenu-container"', 1)[1]
    assert all(f">{s}<" in menu for s in ("SYM0", "SYM1", "SYM2"))
    events = dom.split('id="events-table"', 1)[1].split("</table>", 1)[0]
    assert "halted" in events and "MAX_DAILY_TRADES" in events


@pytest.mark.slow
def test_report_html_when_1m_bars_and_20k_trades_then_page_under_5_mb(tmp_path: Path) -> None:
    """The bench run's shape (10 symbols x 100k bars, ~18.6k trades): display series are thinned."""
    import pandas as pd

    from runner.report_html import write_report
    from runner.run_stats import Closes

    # Arrange
    rng = np.random.default_rng(2)
    steps = 100_000
    clock = 1_704_067_200_000_000 + np.arange(steps, dtype=np.int64) * 60_000_000
    equity = pd.DataFrame({"ts": clock, "equity": 1e6 + np.cumsum(rng.normal(0, 50, steps))})
    sym = np.repeat(np.arange(10), steps)
    closes = Closes(
        tuple(f"SYM{k:02d}" for k in range(10)),
        sym,
        np.tile(clock, 10),
        100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 10 * steps))),
    )
    n = 20_000
    entry = np.sort(rng.choice(steps - 10, n))
    trades = [
        (k, f"SYM{k % 10:02d}", int(clock[e]), 100.0, int(clock[e + 5]), 101.0, 100, 100.0)
        for k, e in enumerate(entry)
    ]
    summary = {"strategy": "sma_cross", "symbols": list(closes.symbols), "stats": {}}
    events = pd.DataFrame(columns=["ts", "state_to", "code"])
    extras = {"closes": closes, "buy_hold": equity["equity"].to_numpy()}
    # Act
    size = write_report(tmp_path / "report.html", summary, equity, trades, events, extras)
    # Assert
    assert size == (tmp_path / "report.html").stat().st_size
    assert 2_000_000 < size < 5_000_000
