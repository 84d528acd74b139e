"""Sweeps compare trading results (issue 12): ranking, sweep_results.parquet, heatmap, DSR/PBO."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from runner import sweep_stats
from runner.sweep import JobRow
from tests.helpers import make_market_db, read_shared_csv, run_cli, synthetic_bars


def _row(num: int, fast: int, slow: int, sharpe: float | None, tmp: Path, **stats: float) -> JobRow:
    run_dir = tmp / str(num)
    run_dir.mkdir(parents=True, exist_ok=True)
    return JobRow(
        num=num,
        run_dir=run_dir,
        overrides=[f"strategy.fast={fast}", f"strategy.slow={slow}", "market.chunk_size=100"],
        status="completed" if sharpe is not None else "failed",
        digest=f"d{num}",
        behaviour={"strategy.fast": fast, "strategy.slow": slow, "db.path": "m.duckdb"},
        performance={"market.chunk_size": 100},
        group=f"B{num}",
        stats={"sharpe": sharpe, "total_fees": stats.get("total_fees", 0.0)}
        if sharpe is not None
        else {},
    )


def test_rank_rows_when_sharpe_then_best_first_and_failed_jobs_last(tmp_path: Path) -> None:
    rows = [
        _row(0, 5, 30, 0.2, tmp_path),
        _row(1, 10, 30, None, tmp_path),
        _row(2, 5, 40, 0.9, tmp_path),
    ]
    ranked = sweep_stats.rank_rows(rows, "sharpe")
    assert [(r.num, r.rank) for r in ranked] == [(2, 1), (0, 2), (1, None)]


def test_rank_rows_when_fees_then_lowest_first(tmp_path: Path) -> None:
    rows = [
        _row(0, 5, 30, 0.2, tmp_path, total_fees=9.0),
        _row(1, 5, 40, 0.1, tmp_path, total_fees=1.0),
    ]
    assert [r.num for r in sweep_stats.rank_rows(rows, "total_fees")] == [1, 0]


def test_check_rank_by_when_misspelt_then_one_line_naming_the_fix() -> None:
    with pytest.raises(
        ValueError,
        match=r"^hydra\.callbacks\.sweep_report\.rank_by must be a "
        r"statistic of summary\.json's stats, was 'sharp'\. Did you mean 'sharpe'\?",
    ):
        sweep_stats.check_rank_by("sharp")


def test_results_parquet_when_read_with_duckdb_then_one_typed_row_per_job(tmp_path: Path) -> None:
    # Arrange
    rows = sweep_stats.rank_rows(
        [
            _row(0, 5, 30, 0.2, tmp_path),
            _row(1, 10, 30, None, tmp_path),
            _row(2, 5, 40, 0.9, tmp_path),
        ],
        "sharpe",
    )
    path = tmp_path / "sweep_results.parquet"
    # Act
    sweep_stats.write_parquet(sweep_stats.results_frame(rows), path)
    got = duckdb.sql(
        f'SELECT job, "strategy.fast", "strategy.slow", "market.chunk_size", sharpe, status, digest, '
        f"rank FROM read_parquet('{path}') ORDER BY job"
    ).fetchall()
    types = {
        r[0]: r[1] for r in duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
    }
    # Assert
    assert got == [
        (0, 5, 30, 100, 0.2, "completed", "d0", 2),
        (1, 10, 30, 100, None, "failed", "d1", None),
        (2, 5, 40, 100, 0.9, "completed", "d2", 1),
    ]
    assert types["strategy.fast"] == "BIGINT" and types["sharpe"] == "DOUBLE"
    assert {"psr", "sqn", "buy_hold_return_pct", "exposure_pct"} <= set(types)


def test_heatmap_when_two_behaviour_keys_vary_then_written(tmp_path: Path) -> None:
    rows = [
        _row(k, f, s, 0.1 * k, tmp_path) for k, (f, s) in enumerate([(5, 30), (5, 40), (10, 30)])
    ]
    keys = sweep_stats.varying_behaviour_keys(rows)
    assert keys == ["strategy.fast", "strategy.slow"]
    assert sweep_stats.plot_heatmap(rows, keys, "sharpe", tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 5000
    assert not sweep_stats.plot_heatmap(rows, keys[:1], "sharpe", tmp_path / "h1.png")


def _write_daily(row: JobRow, returns: np.ndarray) -> None:
    days = pd.bdate_range("2020-01-01", periods=len(returns) + 1).strftime("%Y-%m-%d")
    equity = 1e6 * np.cumprod(np.r_[1.0, 1 + returns])
    pd.DataFrame({"day": days, "equity": equity}).to_csv(
        row.run_dir / "equity_daily.csv", index=False
    )


def test_overfit_lines_when_ten_trials_of_noise_then_dsr_and_pbo_read_as_luck(
    tmp_path: Path,
) -> None:
    """Ten trials of pure noise: neither the best Sharpe nor the in-sample winner means anything."""
    rng = np.random.default_rng(5)
    rows = [_row(k, 5 + k, 40, 0.0, tmp_path) for k in range(10)]
    for row in rows:
        _write_daily(row, rng.normal(0, 0.01, 400))
    dsr_line, pbo_line = sweep_stats.overfit_lines(rows)
    assert (
        dsr_line.startswith("Deflated Sharpe Ratio of the best job")
        and "over 10 trials" in dsr_line
    )
    assert "not significant at 5 %" in dsr_line
    assert pbo_line.startswith("Probability of Backtest Overfitting (CSCV, 400 common days in 16")
    assert "12,870 splits, 10 trials" in pbo_line


def test_overfit_lines_when_one_trial_has_real_edge_then_dsr_significant_and_pbo_low(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(6)
    rows = [_row(k, 5 + k, 40, 0.0, tmp_path) for k in range(8)]
    for k, row in enumerate(rows):
        _write_daily(row, rng.normal(0.004 if k == 3 else 0.0, 0.01, 600))
    dsr_line, pbo_line = sweep_stats.overfit_lines(rows)
    assert "job 3" in dsr_line and "significant at 5 %: unlikely" in dsr_line
    assert "**0.00**" in pbo_line


@pytest.fixture(scope="module")
def goog_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_market_db(
        tmp_path_factory.mktemp("goog") / "goog.duckdb", read_shared_csv("goog_daily_2004_2013.csv")
    )


@pytest.mark.slow
def test_sweep_when_goog_fast_by_slow_5x5_then_ranked_report_heatmap_and_parquet(
    goog_db: Path, tmp_path: Path
) -> None:
    """The README's command: 25 sma_cross jobs on GOOG, ranked by Sharpe, heatmap, DSR and PBO."""
    # Arrange
    sweep_dir = tmp_path / "sweep"
    # Act
    proc = run_cli(
        "runner",
        [
            "-m",
            "+experiment=backtest",
            f"db.path={goog_db}",
            "symbols=[GOOG]",
            "strategy.fast=5,10,15,20,25",
            "strategy.slow=30,40,50,60,70",
            "run.html=false",
            "run.plot=false",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        timeout=900,
    )
    # Assert
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(sweep_dir / "sweep_report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 25
    sharpes = [float(r["sharpe"]) for r in rows]
    assert sharpes == sorted(sharpes, reverse=True) and len(set(sharpes)) > 10
    assert [int(r["rank"]) for r in rows] == list(range(1, 26))
    assert all(r["return_pct"] and r["max_drawdown_pct"] and r["n_trades"] for r in rows)
    assert (sweep_dir / "sweep_heatmap.png").stat().st_size > 10_000
    report = (sweep_dir / "sweep_report.md").read_text()
    assert "Ranked by `sharpe`" in report and "![sharpe by strategy.fast x strategy.slow]" in report
    assert "Deflated Sharpe Ratio of the best job" in report and "over 25 trials" in report
    assert "Probability of Backtest Overfitting (CSCV, 2,147 common days in 16 blocks" in report
    grid = duckdb.sql(
        f'SELECT "strategy.fast" AS fast, "strategy.slow" AS slow, sharpe, n_trades, status '
        f"FROM read_parquet('{sweep_dir / 'sweep_results.parquet'}') ORDER BY sharpe DESC"
    ).fetchall()
    assert len(grid) == 25 and {g[4] for g in grid} == {"completed"}
    assert grid[0][2] == pytest.approx(sharpes[0]) and (grid[0][0], grid[0][1]) in {
        (f, s) for f in (5, 10, 15, 20, 25) for s in (30, 40, 50, 60, 70)
    }
    default = next(g for g in grid if (g[0], g[1]) == (10, 30))
    assert default[3] == 32  # the golden run (DESIGN section 5) is one cell of the grid


@pytest.mark.parametrize("kind", ["fractional", "integral", "with_nan"])
def test_daily_returns_when_read_then_equal_pandas_pct_change_dropna(
    kind: str, tmp_path: Path
) -> None:
    """Issue 13: the sweep report's per-day returns, computed on arrays, equal pandas' exactly."""
    from runner import run_stats

    # Arrange
    rng = np.random.default_rng(5)
    ts = 1_600_000_000_000_000 + np.arange(300, dtype=np.int64) * 86_400_000_000
    values = 1e6 + np.cumsum(rng.normal(0, 321.123, 300))
    if kind == "integral":
        values = np.round(values)
    if kind == "with_nan":
        values[[3, 40, 41]] = np.nan
    path = tmp_path / "equity_daily.csv"
    run_stats.write_equity_daily(path, pd.DataFrame({"ts": ts, "equity": values}))
    # Act
    ours = sweep_stats.daily_returns(path)
    # Assert
    expected = pd.read_csv(path, index_col="day")["equity"].pct_change().dropna()
    pd.testing.assert_series_equal(ours, expected, check_exact=True, check_index_type=True)


# --- issue 13: the report's returns parsed without pandas, the PBO matrix without aligning -------
# The oracle is the implementation before that change, kept here verbatim: each job's
# equity_daily.csv read by pd.read_csv, the trials aligned by pd.concat(join="inner").dropna().


def _old_daily_returns(path: Path) -> pd.Series:
    daily = pd.read_csv(path, index_col="day")["equity"]
    values = daily.to_numpy(dtype=np.float64)
    change = values[1:] / values[:-1] - 1.0
    keep = ~np.isnan(change)
    index = daily.index[1:][keep]
    return pd.Series(change[keep], index=index, name=daily.name)


def _old_trial_returns(rows: list[JobRow]) -> dict[int, pd.Series]:
    chosen: dict[int, Path] = {}
    seen: set[str] = set()
    for row in sorted(rows, key=lambda r: r.num):
        if row.status not in sweep_stats.OK_STATUSES or row.group in seen:
            continue
        path = row.run_dir / sweep_stats.DAILY_FILE
        if not path.exists():
            continue
        chosen[row.num] = path
        seen.add(row.group)
    return {num: _old_daily_returns(path) for num, path in chosen.items()}


def _old_pbo_line(returns: dict[int, pd.Series]) -> str:
    matrix = pd.concat(returns, axis=1, join="inner").dropna()
    splits = sweep_stats.PBO_SPLITS
    while splits > 2 and len(matrix) < 2 * splits:
        splits -= 2
    if len(matrix) < 2 * splits:
        return f"Probability of Backtest Overfitting: too few common days ({len(matrix)})."
    result = sweep_stats.pbo_cscv_batched(matrix.to_numpy(), n_splits=splits)
    verdict = (
        "the selection is no better than chance out of sample"
        if result.pbo >= 0.5
        else "the in-sample winner mostly stays above the median out of sample"
    )
    return (
        f"Probability of Backtest Overfitting (CSCV, {len(matrix):,} common days in {splits} "
        f"blocks, {result.n_combinations:,} splits, {matrix.shape[1]} trials): **{result.pbo:.2f}**: in "
        f"{result.pbo:.0%} of the splits the in-sample best ranked at or below the out-of-sample "
        f"median; {verdict}."
    )


def _old_overfit_lines(rows: list[JobRow]) -> list[str]:
    returns = _old_trial_returns(rows)
    if len(returns) < 2:
        return [
            "Deflated Sharpe Ratio: needs at least 2 completed trials with daily equity "
            f"({len(returns)} here)."
        ]
    moments = {num: sweep_stats.sharpe_moments(r.to_numpy()) for num, r in returns.items()}
    valid = {num: m for num, m in moments.items() if m is not None}
    lines = [sweep_stats._dsr_line(valid, len(returns), rows)] if len(valid) >= 2 else []
    if len(returns) >= sweep_stats.PBO_MIN_TRIALS:
        lines.append(_old_pbo_line(returns))
    else:
        lines.append(
            f"Probability of Backtest Overfitting: needs at least {sweep_stats.PBO_MIN_TRIALS} "
            f"trials ({len(returns)} here)."
        )
    return lines


def _written(days: list[str], equity: list[float]) -> str:
    """The text of ``run_stats.write_equity_daily`` (same header, same per-line expression)."""
    lines = [
        f"{day},{'' if value != value else f'{value:.17g}'}"
        for day, value in zip(days, equity, strict=True)
    ]
    return "day,equity\n" + "\n".join(lines) + "\n"


# files the writer does not write: read by pandas as before, or (when pandas cannot) left out;
# and the writer's shortest files
_ODD_FILES = {
    "one_day": lambda text: "\n".join(text.split("\n")[:2]) + "\n",
    "two_days": lambda text: "\n".join(text.split("\n")[:3]) + "\n",
    "crlf": lambda text: text.replace("\n", "\r\n"),
    "no_last_newline": lambda text: text[:-1],
    "cut_mid_line": lambda text: text[: len(text) - 7],
    "blank_lines": lambda text: text.replace("\n", "\n\n", 3),
    "inf_and_nan_text": lambda text: text + "2031-01-01,inf\n2031-01-02,nan\n2031-01-03,5\n",
    "repr_floats": lambda text: _reformat(text, lambda v: repr(float(v))),  # pandas' to_csv
    "exponents": lambda text: _reformat(text, lambda v: f"{float(v):.16e}"),
    "minus_zero_integers": lambda text: "day,equity\n2020-01-01,5\n2020-01-02,-0\n2020-01-03,7\n",
    "huge_integers": lambda text: "day,equity\n2020-01-01,5\n2020-01-02,1234567890123456789012\n",
    "header_only": lambda text: "day,equity\n",
    "empty": lambda text: "",  # pandas raises: the trial is left out
    "garbage_line": lambda text: text + "2031-01-01,abc\n",  # pandas raises
    "three_fields": lambda text: text + "2031-01-01,1,2\n",  # pandas raises
}


def _reformat(text: str, fmt: Any) -> str:
    """``text`` with each non-empty value written by ``fmt`` instead of %.17g."""
    head, *lines = text.rstrip("\n").split("\n")
    for k, line in enumerate(lines):
        day, _, value = line.partition(",")
        lines[k] = f"{day},{fmt(value) if value else ''}"
    return "\n".join([head, *lines]) + "\n"


def _sweep(
    tmp: Path, trials: list[tuple[list[str], list[float], str | None]], groups: list[int]
) -> list[JobRow]:
    """One job per entry (days, equity, odd-file kind or None), in the given behaviour groups."""
    rows = []
    for num, ((days, equity, odd), group) in enumerate(zip(trials, groups, strict=True)):
        row = _row(num, 5 + num, 40, 0.1 * num, tmp)
        row.group = f"B{group}"
        text = _written(days, equity)
        (row.run_dir / "equity_daily.csv").write_bytes(
            (text if odd is None else _ODD_FILES[odd](text)).encode()
        )
        rows.append(row)
    return rows


def _readable_by_old_code(rows: list[JobRow]) -> list[JobRow]:
    """The rows whose file the old code could read (it failed the whole report on the others)."""
    kept = []
    for row in rows:
        try:
            _old_daily_returns(row.run_dir / "equity_daily.csv")
        except (ValueError, TypeError, KeyError):
            continue
        kept.append(row)
    return kept


def _days(n: int, start: str = "2020-01-01") -> list[str]:
    return list(pd.bdate_range(start, periods=n).strftime("%Y-%m-%d"))


def _equity(rng: np.random.Generator, n: int, integral: bool, nan_gaps: int) -> list[float]:
    equity = 1e6 * np.cumprod(1 + rng.normal(0.0003, 0.01, n))
    if integral:
        equity = np.round(equity)
    equity[rng.choice(n, size=min(nan_gaps, n), replace=False)] = np.nan
    return equity.tolist()


@pytest.mark.parametrize(
    ("days_kind", "nan_gaps", "integral", "n_trials"),
    [
        ("same", 0, False, 10),
        ("same", 3, False, 10),
        ("same", 0, True, 9),
        ("same", 2, False, 3),
        ("differing", 0, False, 10),
        ("differing", 4, True, 12),
        ("one_shorter", 0, False, 8),
        ("disjoint", 0, False, 8),
    ],
)
def test_overfit_lines_when_equity_files_vary_then_same_text_as_the_pandas_implementation(
    days_kind: str, nan_gaps: int, integral: bool, n_trials: int, tmp_path: Path
) -> None:
    # Arrange
    rng = np.random.default_rng(nan_gaps * 100 + n_trials)
    trials = []
    for k in range(n_trials):
        days = {
            "same": _days(300),
            "differing": _days(300 - 7 * k, start=f"2020-01-{1 + k:02d}"),
            "one_shorter": _days(250 if k == 3 else 300),
            "disjoint": _days(40, start=f"{2000 + k}-01-01"),
        }[days_kind]
        trials.append((days, _equity(rng, len(days), integral, nan_gaps), None))
    rows = _sweep(tmp_path, trials, list(range(n_trials)))
    # Act
    lines = sweep_stats.overfit_lines(rows)
    # Assert
    assert lines == _old_overfit_lines(rows)
    assert len(lines) == 2


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # 7 / -0
@pytest.mark.parametrize("odd", sorted(_ODD_FILES))
def test_overfit_lines_when_one_file_is_odd_then_pandas_reads_it_or_the_trial_is_left_out(
    odd: str, tmp_path: Path
) -> None:
    """A file pandas cannot read failed the whole report (EmptyDataError, ParserError, ...); now
    the next job of its group stands for the trial, or the trial is left out."""
    # Arrange: 10 trials; job 2's file is odd; job 10 ran trial B2 again (a performance key)
    rng = np.random.default_rng(len(odd))
    trials = [
        (_days(200), _equity(rng, 200, False, 1), "crlf" if k == 7 else None) for k in range(11)
    ]
    trials[2] = (trials[2][0], trials[2][1], odd)
    rows = _sweep(tmp_path, trials, [*range(10), 2])
    readable = _readable_by_old_code(rows)
    # Act
    lines = sweep_stats.overfit_lines(rows)
    # Assert
    expected = _old_overfit_lines(readable)
    assert lines[: len(expected)] == expected
    if odd in ("empty", "garbage_line", "three_fields"):
        assert [r.num for r in readable] == [0, 1, *range(3, 11)]  # the old code raised
        assert "over 10 trials" in lines[0]  # job 10 stands for trial B2
        assert lines[len(expected) :] == [sweep_stats._left_out_line([2])]
        assert "job(s) 2, whose equity_daily.csv could not be read" in lines[-1]
    else:
        assert readable == rows
        assert len(lines) == len(expected)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # 7 / -0
@pytest.mark.parametrize("odd", sorted(_ODD_FILES))
def test_daily_returns_when_file_is_odd_then_as_pandas_read_it_or_the_same_error(
    odd: str, tmp_path: Path
) -> None:
    # Arrange
    path = tmp_path / "equity_daily.csv"
    text = _written(_days(30), _equity(np.random.default_rng(3), 30, False, 2))
    path.write_bytes(_ODD_FILES[odd](text).encode())
    try:
        expected = _old_daily_returns(path)
    except (ValueError, TypeError, KeyError) as exc:
        # Act / Assert
        with pytest.raises(type(exc)):
            sweep_stats.daily_returns(path)
        return
    # Act
    ours = sweep_stats.daily_returns(path)
    # Assert
    pd.testing.assert_series_equal(ours, expected, check_exact=True, check_index_type=True)


def test_daily_returns_when_writer_format_then_each_value_is_float_of_its_text(
    tmp_path: Path,
) -> None:
    """Exactness, not only agreement with pandas: Arrow's cast is correctly rounded, as float()."""
    # Arrange: values over the whole range (tiny, huge, exponents) and their %.17g text
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**63, 3000, dtype=np.uint64)
    equity = np.r_[1e6, np.abs(bits.view(np.float64))]
    equity = equity[np.isfinite(equity) & (equity > 0)]
    days = [str(d) for d in np.arange(len(equity)).astype("datetime64[D]")]
    path = tmp_path / "equity_daily.csv"
    path.write_text(_written(days, equity.tolist()))
    parsed = np.array([float(f"{v:.17g}") for v in equity.tolist()])
    # Act
    with np.errstate(over="ignore"):
        ours = sweep_stats.daily_returns(path)
    # Assert
    assert sweep_stats._parse_daily(path.read_bytes()) is not None  # the fast path, not pandas
    with np.errstate(all="ignore"):
        change = parsed[1:] / parsed[:-1] - 1.0
    assert np.array_equal(ours.to_numpy(), change[~np.isnan(change)])
    assert list(ours.index) == days[1:]


@pytest.mark.parametrize(
    "days_kind", ["same", "same_but_one_gap", "equal_not_same", "differing", "duplicated"]
)
def test_pbo_matrix_when_days_shared_or_not_then_equal_to_inner_concat_dropna(
    days_kind: str,
) -> None:
    # Arrange
    rng = np.random.default_rng(2)
    index = pd.Index(_days(50), name="day")
    returns = {}
    for k in (4, 1, 7):  # the dict's order, not sorted
        values = rng.normal(0, 0.01, 50)
        day_index = index
        if days_kind == "same_but_one_gap" and k == 1:
            values[[5, 6]] = np.nan
        if days_kind == "equal_not_same":
            day_index = pd.Index(list(index), name="day")
        if days_kind == "differing" and k == 7:
            day_index = pd.Index(_days(50, start="2020-01-08"), name="day")
        if days_kind == "duplicated":  # equal indexes with duplicate days: pandas cannot align
            day_index = pd.Index(list(index[:25]) * 2, name="day")
        returns[k] = pd.Series(values, index=day_index, name="equity")
    try:
        expected = pd.concat(returns, axis=1, join="inner").dropna().to_numpy()
    except ValueError as exc:
        # Act / Assert
        with pytest.raises(ValueError, match=str(exc)):
            sweep_stats._pbo_matrix(returns)
        assert days_kind == "duplicated"
        return
    # Act
    matrix = sweep_stats._pbo_matrix(returns)
    # Assert
    assert matrix.shape == expected.shape and np.array_equal(matrix, expected)
    assert matrix.flags.f_contiguous == expected.flags.f_contiguous


def _line_kind(line: str) -> str:
    for words in ("CSCV", "needs at least 8", "too few common days", "needs at least 2"):
        if words in line:
            return f"last line: {words}"
    return "last line: other"


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    n_trials=st.sampled_from([1, 2, 5, 7, *[10, 11, 12, 14] * 3]),
    n_days=st.integers(2, 70),
    seed=st.integers(0, 2**32 - 1),
)
def test_overfit_lines_property_when_random_sweeps_then_same_text_as_the_pandas_implementation(
    data: st.DataObject,
    n_trials: int,
    n_days: int,
    seed: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Random sweeps: shared or differing days, NaN gaps, integral equity, odd files, groups of
    jobs that ran one trial, failed jobs."""
    # Arrange
    tmp = tmp_path_factory.mktemp("sweep")
    rng = np.random.default_rng(seed)
    shared = data.draw(st.booleans(), label="shared days")
    odd_at = data.draw(st.none() | st.integers(0, n_trials - 1), label="job with an odd file")
    gappy = data.draw(st.booleans(), label="NaN gaps")
    trials = []
    for k in range(n_trials):
        n = n_days if shared else data.draw(st.integers(n_days // 2 + 1, n_days), label="days")
        start = "2020-01-01" if shared else data.draw(st.sampled_from(["2020-01-01", "2020-01-06"]))
        odd = data.draw(st.sampled_from(sorted(_ODD_FILES))) if k == odd_at else None
        gaps = data.draw(st.sampled_from([0, 1, 3])) if gappy else 0
        trials.append((_days(n, start), _equity(rng, n, data.draw(st.booleans()), gaps), odd))
    groups = [0]  # now and then a job ran the trial of the one before (a performance key)
    for _ in range(1, n_trials):
        rerun = data.draw(st.sampled_from([False] * 9 + [True]), label="rerun")
        groups.append(groups[-1] + (not rerun))
    rows = _sweep(tmp, trials, groups)
    for row in rows:
        row.status = data.draw(st.sampled_from(["completed"] * 18 + ["halted", "failed"]))
    # Act
    with np.errstate(all="ignore"):
        lines = sweep_stats.overfit_lines(rows)
        expected = _old_overfit_lines(_readable_by_old_code(rows))
        returns = sweep_stats.trial_returns(rows)
    # Assert: the old code's lines, then at most the line naming the unreadable files
    assert lines[: len(expected)] == expected
    extra = lines[len(expected) :]
    assert extra == [] or (len(extra) == 1 and extra[0].startswith("Left out of the Deflated"))
    event(_line_kind(lines[len(expected) - 1]))
    indexes = {id(r.index) for r in returns.values()}
    event(f"trials' day indexes: {'one object' if len(indexes) == 1 else 'several'}")
    fast = sum(
        sweep_stats._parse_daily((r.run_dir / "equity_daily.csv").read_bytes()) is not None
        for r in rows
    )
    event(
        f"files parsed without pandas: {'all' if fast == len(rows) else 'some' if fast else 'none'}"
    )


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(values=[-0.0, 5.0, 1.0])  # pandas reads '-0' among integers as 0
@given(
    values=st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=False, width=64),
            st.floats(min_value=1e5, max_value=1e7),
            st.integers(-(10**9), 10**9).map(float),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_write_equity_daily_when_any_values_then_each_reads_back_as_the_same_double(
    values: list[float], tmp_path: Path
) -> None:
    """Issue 13: Arrow's shortest texts read back (pandas and the report's parser) exactly."""
    from runner import run_stats

    # Arrange
    ts = 1_600_000_000_000_000 + np.arange(len(values), dtype=np.int64) * 86_400_000_000
    array = np.array(values, dtype=np.float64)
    path = tmp_path / "equity_daily.csv"
    # Act
    run_stats.write_equity_daily(path, pd.DataFrame({"ts": ts, "equity": array}))
    # Assert
    text = path.read_text()
    assert text.startswith("day,equity\n") and text.endswith("\n")
    # each text is the exact double (sign of zero included); NaN is an empty field
    texts = [line.split(",")[1] for line in text.splitlines()[1:]]
    written = np.array([float(t) if t else np.nan for t in texts])
    assert written.tobytes() == np.where(np.isnan(array), np.nan, array).tobytes()
    # pandas reads the same numbers ("-0" among integers as 0, as it did with %.17g's "-0")
    read = pd.read_csv(path, index_col="day")["equity"].to_numpy(dtype=np.float64)
    assert np.array_equal(read, array, equal_nan=True)
    if len(values) > 1:
        ours = sweep_stats.daily_returns(path)
        expected = pd.read_csv(path, index_col="day")["equity"].pct_change().dropna()
        pd.testing.assert_series_equal(ours, expected, check_exact=True, check_index_type=True)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 10_000),
    cut=st.floats(0.3, 1.0),
    window=st.tuples(st.integers(0, 150), st.integers(300, 599) | st.none()),
    data=st.data(),
)
def test_buy_hold_anchors_when_taken_from_cached_closes_then_equal_the_db_query(
    seed: int,
    cut: float,
    window: tuple[int, int | None],
    data: st.DataObject,
    tmp_path_factory: Any,
) -> None:
    """Issue 13: a sweep job's anchors from the process's closes equal the single run's query."""
    import duckdb

    from components.market.base import Universe
    from runner import run_stats

    # Arrange
    bars = synthetic_bars(4, 600, seed=seed)
    db = make_market_db(tmp_path_factory.mktemp("anchors") / "m.duckdb", bars)
    clock = np.sort(bars["ts"].unique())
    start = pd.Timestamp(clock[window[0]]).value // 1000
    end = None if window[1] is None else pd.Timestamp(clock[window[1]]).value // 1000
    last_us = pd.Timestamp(clock[int(cut * (len(clock) - 1))]).value // 1000
    universe = Universe(symbols=tuple(sorted(bars["symbol"].unique())), start_us=start, end_us=end)
    con = duckdb.connect(str(db), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    try:
        closes = run_stats.read_closes(con, universe, last_us)
        counts = np.bincount(closes.sym, minlength=len(universe.symbols)).tolist()
        # a warm-up at, just below or just above a symbol's bar count (its edge), or any
        warmup = data.draw(
            st.sampled_from([max(0, c + d) for c in counts for d in (-1, 0, 1)])
            | st.integers(0, 400)
        )
        # Act
        expected = run_stats.anchors_from_db(con, universe, last_us, warmup)
        got = run_stats.buy_hold_anchors(closes, warmup)
    finally:
        con.close()
    # Assert
    assert got == expected
