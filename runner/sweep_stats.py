"""Trading results of a sweep (issue 12): ranking, ``sweep_results.parquet``, the heatmap, DSR, PBO.

``runner.sweep`` reads the jobs and checks parity; this module compares what they earned. Each
job's ``summary.json`` holds its ``stats``; its ``equity_daily.csv`` (last equity of each day)
gives the per-period returns the Deflated Sharpe Ratio and PBO need. A *trial* is one behaviour
group (jobs that differ only in performance keys ran the same trial), so the number of trials
is the number of distinct behaviour configurations that completed.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.results.overfit import (
    deflated_sharpe_ratio,
    pbo_cscv_batched,
    sharpe_moments,
)
from components.results.stats import STAT_KEYS
from runner.parity import override_key

if TYPE_CHECKING:
    from runner.sweep import JobRow

NOT_RANKABLE = ("start", "end")
RANK_KEYS = tuple(k for k in STAT_KEYS if k not in NOT_RANKABLE)
LOWER_IS_BETTER = frozenset(
    {
        "volatility_ann_pct",
        "max_drawdown_duration_days",
        "avg_drawdown_duration_days",
        "total_fees",
        "turnover",
    }
)  # max/avg drawdown are negative percents: higher (closer to 0) is better already
PBO_MIN_TRIALS = 8
MAX_ANNOTATED_CELLS = 400  # a larger heatmap is colour only (1,000 texts cost seconds to draw)
PBO_SPLITS = 16
DAILY_FILE = "equity_daily.csv"
OK_STATUSES = ("completed", "halted")


def check_rank_by(rank_by: str) -> str:
    """Return ``rank_by`` when it names a statistic; raise a one-line error naming the choices."""
    if rank_by in RANK_KEYS:
        return rank_by
    import difflib

    close = difflib.get_close_matches(rank_by, RANK_KEYS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ValueError(
        f"hydra.callbacks.sweep_report.rank_by must be a statistic of summary.json's stats, was "
        f"{rank_by!r}.{hint} Known: {', '.join(RANK_KEYS)}; e.g. "
        "hydra.callbacks.sweep_report.rank_by=return_pct"
    )


def rank_rows(rows: list[JobRow], rank_by: str) -> list[JobRow]:
    """Return the rows best first by ``rank_by`` (jobs without the figure last); set ``row.rank``."""
    sign = 1.0 if rank_by in LOWER_IS_BETTER else -1.0

    def key(row: JobRow) -> tuple[int, float, int]:
        value = _stat(row, rank_by)
        return (1, 0.0, row.num) if value is None else (0, sign * value, row.num)

    ranked = sorted(rows, key=key)
    for position, row in enumerate(ranked, start=1):
        row.rank = position if _stat(row, rank_by) is not None else None
    return ranked


def results_frame(rows: list[JobRow]) -> pd.DataFrame:
    """Return one row per job: job, status, each override as a column, every stat, digest."""
    keys: list[str] = []
    for row in rows:
        for o in row.overrides:
            if override_key(o) not in keys:
                keys.append(override_key(o))
    records = []
    for row in rows:
        record: dict[str, Any] = {"job": row.num, "rank": row.rank, "status": row.status}
        given = {override_key(o): o.split("=", 1)[1] if "=" in o else "" for o in row.overrides}
        for key in keys:
            record[key] = _typed(row, key, given.get(key))
        record.update({k: (row.stats or {}).get(k) for k in STAT_KEYS})
        record.update(
            {
                "digest": row.digest,
                "parity": row.parity,
                "group": row.group,
                "run_dir": str(row.run_dir),
            }
        )
        records.append(record)
    # the records' keys in their order (an override named like a statistic, e.g. ``end``, is one
    # column, the statistic's value): the same columns when there is no job at all
    columns = dict.fromkeys(
        ["job", "rank", "status", *keys, *STAT_KEYS, "digest", "parity", "group", "run_dir"]
    )
    frame = pd.DataFrame.from_records(records, columns=list(columns))
    frame["n_trades"] = frame["n_trades"].astype("Int64")  # a count, null for a failed job
    frame["rank"] = frame["rank"].astype("Int64")
    for key in STAT_KEYS:
        if key not in ("start", "end", "n_trades"):
            frame[key] = frame[key].astype("float64")
    for key in keys:  # one type per column: mixed values (10, "abc") become text
        if frame[key].map(type).nunique() > 1:
            frame[key] = frame[key].map(lambda v: None if v is None else str(v))
    return frame


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def varying_behaviour_keys(rows: list[JobRow]) -> list[str]:
    """Return the behaviour keys whose values differ between the jobs, in override order."""
    keys: list[str] = []
    for row in rows:
        for o in row.overrides:
            key = override_key(o)
            if key in row.behaviour and key not in keys:
                keys.append(key)
    return [k for k in keys if len({repr(r.behaviour.get(k)) for r in rows}) > 1]


def plot_heatmap(rows: list[JobRow], keys: list[str], rank_by: str, path: Path) -> bool:
    """Draw ``rank_by`` over the grid of two behaviour keys (best of each cell); True when written."""
    if len(keys) != 2:
        return False
    import matplotlib
    from matplotlib.figure import Figure  # not pyplot: ~0.3 s less to import

    ky, kx = keys
    cells: dict[tuple[Any, Any], float] = {}
    better = min if rank_by in LOWER_IS_BETTER else max
    for row in rows:
        value = _stat(row, rank_by)
        cell = (row.behaviour.get(ky), row.behaviour.get(kx))
        if value is not None:
            cells[cell] = better(cells.get(cell, value), value)
    ys = sorted({r.behaviour.get(ky) for r in rows}, key=_sort_key)
    xs = sorted({r.behaviour.get(kx) for r in rows}, key=_sort_key)
    grid = np.array([[cells.get((y, x), np.nan) for x in xs] for y in ys], dtype=float)
    # cells shrink on a large grid: a 25 x 40 grid drew a 3,000 x 3,000-pixel PNG in ~1.7 s
    width, height = min(1.1 * len(xs) + 3, 16.0), min(0.7 * len(ys) + 2.2, 12.0)
    fig = Figure(figsize=(width, height))
    ax = fig.subplots()
    # margins from the label lengths instead of tight_layout, which lays every label out once
    # more to measure it (~1/3 of the figure's time; the report waits for it). Tick labels are
    # 10-point text (a character is at most ~0.62 em wide); each axis title takes ~0.35 inch.
    y_chars = max((len(str(y)) for y in ys), default=1)
    fig.subplots_adjust(
        left=min((y_chars * 10 * 0.62 / 72 + 0.55) / width, 0.4),
        right=1 - 0.1 / width,
        bottom=min(0.75 / height, 0.3),
        top=1 - 0.45 / height,
    )
    cmap = matplotlib.colormaps["RdYlGn_r" if rank_by in LOWER_IS_BETTER else "RdYlGn"]
    cmap = cmap.with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", origin="lower")
    for (i, j), value in np.ndenumerate(grid if grid.size <= MAX_ANNOTATED_CELLS else []):
        ax.text(
            j, i, "n/a" if np.isnan(value) else f"{value:.3g}", ha="center", va="center", fontsize=8
        )
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(kx)
    ax.set_ylabel(ky)
    fig.colorbar(image, ax=ax, label=rank_by)
    ax.set_title(f"{rank_by} by {ky} x {kx} (grey: no result)", fontsize=10)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    return True


def trial_returns(rows: list[JobRow], unreadable: list[int] | None = None) -> dict[int, pd.Series]:
    """Return daily equity returns per trial (first completed job of each behaviour group).

    A job whose ``equity_daily.csv`` is missing or cannot be read (empty, a line pandas cannot
    parse) is passed over for the next job of its group: a damaged file leaves its trial out
    instead of failing the whole report. The numbers of jobs whose file could not be read are
    appended to ``unreadable``.
    """
    returns: dict[int, pd.Series] = {}
    seen: set[str] = set()
    indexes = _DayIndexes()
    for row in sorted(rows, key=lambda r: r.num):
        if row.status not in OK_STATUSES or row.group in seen:
            continue
        path = row.run_dir / DAILY_FILE
        if not path.exists():
            continue
        try:
            returns[row.num] = _daily_returns(path, indexes)
        except (OSError, ValueError, TypeError, KeyError):
            if unreadable is not None:
                unreadable.append(row.num)
            continue
        seen.add(row.group)
    return returns


def daily_returns(path: Path) -> pd.Series:
    """Return ``pd.read_csv(path, index_col="day")["equity"].pct_change().dropna()``.

    The change is computed on the arrays (the same divisions, so the same floats; ~0.5 ms less
    per job than pandas' ``pct_change`` and ``dropna``). A file as ``write_equity_daily`` writes
    it is parsed without pandas (``_parse_daily``), anything else by ``pd.read_csv`` as before.
    """
    return _daily_returns(path, _DayIndexes())


class _DayIndexes:
    """One index object per distinct set of days, shared by the trials' returns.

    Building the index of 2,500 days costs more than parsing the file; a shared object also
    lets ``_pbo_matrix`` see at once that the trials' days are the same.
    """

    def __init__(self) -> None:
        self._tails: dict[bytes, pd.Index] = {}  # a file's days (bytes) -> its index[1:]
        self._kept: dict[tuple[bytes, bytes], pd.Index] = {}  # (days, kept mask) -> index

    def returns_index(self, days: np.ndarray, keep: np.ndarray) -> pd.Index:
        """Return ``pd.Index(days, name="day")[1:][keep]`` (``days``: n x 10 ASCII bytes)."""
        key = days.tobytes()
        tail = self._tails.get(key)
        if tail is None:
            text = key.decode("ascii")
            index = pd.Index([text[k : k + 10] for k in range(0, len(text), 10)], name="day")
            tail = self._tails[key] = index[1:]
        if keep.all():
            return tail
        kept = (key, keep.tobytes())
        if kept not in self._kept:
            self._kept[kept] = tail[keep]
        return self._kept[kept]


_HEADER = b"day,equity\n"
# the bytes write_equity_daily writes after its header: days (digits, '-'), ',', '\n' and the
# values' shortest round-trip text ('.', 'e', '+', '-'; no 'inf' or 'nan': an empty value is NaN)
_WRITTEN = b"0123456789-+.e,\n"
_DAY_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9]  # YYYY-MM-DD
_NEWLINE, _COMMA, _DASH, _ZERO = (ord(c) for c in "\n,-0")


def _daily_returns(path: Path, indexes: _DayIndexes) -> pd.Series:
    parsed = _parse_daily(path.read_bytes())
    if parsed is None:  # not the writer's format: pandas reads it (or raises) as it always did
        daily = pd.read_csv(path, index_col="day")["equity"]
        values = daily.to_numpy(dtype=np.float64)
        change = values[1:] / values[:-1] - 1.0
        keep = ~np.isnan(change)
        return pd.Series(change[keep], index=daily.index[1:][keep], name=daily.name)
    days, values = parsed
    change = values[1:] / values[:-1] - 1.0
    keep = ~np.isnan(change)
    return pd.Series(change[keep], index=indexes.returns_index(days, keep), name="equity")


def _parse_daily(data: bytes) -> tuple[np.ndarray, np.ndarray] | None:
    """Return (days as an n x 10 byte array, equity) of a file as ``write_equity_daily`` writes it.

    None for anything else (no header, a missing last newline, a line that is not
    ``YYYY-MM-DD,<a decimal number or empty>``): the caller reads such a file with pandas. The values are
    parsed by Arrow's string-to-double cast (correctly rounded, so each equals ``float()`` of its
    text: exact for any round-trip text); Python's ``float()`` of 17 digits costs ~0.3 us a value, as much as
    all of ``pd.read_csv``. Where pandas would read a value differently (``-0`` among integers
    reads as 0) the file is left to pandas.
    """
    if not data.startswith(_HEADER) or not data.endswith(b"\n"):
        return None
    body = data[len(_HEADER) :]
    if not body or body.translate(None, _WRITTEN) or len(body) >= 2**31:
        return None
    raw = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(raw == _NEWLINE)
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    lengths = ends - starts - 11  # of the values: a line is 10 bytes of day, ',', value, '\n'
    if (
        (lengths < 0).any()
        or (raw[starts + 10] != _COMMA).any()
        or np.count_nonzero(raw == _COMMA) != len(ends)
    ):
        return None
    days = raw[starts[:, None] + np.arange(10)]
    if (days[:, [4, 7]] != _DASH).any() or (days[:, _DAY_DIGITS] - _ZERO > 9).any():
        return None  # uint8: a byte below '0' wraps above 9
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets = np.empty(len(ends) + 1, dtype=np.int32)
    offsets[0], offsets[1:] = 0, ends + 1
    valid = None if lengths.all() else pa.py_buffer(np.packbits(lengths > 0, bitorder="little"))
    lines = pa.Array.from_buffers(
        pa.binary(), len(ends), [valid, pa.py_buffer(offsets), pa.py_buffer(body)]
    )
    try:  # an empty value is null, so NaN
        values = pc.cast(pc.binary_slice(lines, 11, -1), pa.float64()).to_numpy(
            zero_copy_only=False
        )
    except pa.ArrowInvalid:  # e.g. '1e' or '--1': pandas reads the column as text
        return None
    if ((values == 0) & np.signbit(values)).any():
        return None  # '-0' among integers reads as 0 in pandas
    return days, values


def overfit_lines(rows: list[JobRow]) -> list[str]:
    """Return the one-line readings of the Deflated Sharpe Ratio and of PBO (>= 8 trials).

    A last line names the jobs whose ``equity_daily.csv`` could not be read, if any.
    """
    unreadable: list[int] = []
    returns = trial_returns(rows, unreadable)
    left_out = [_left_out_line(unreadable)] if unreadable else []
    if len(returns) < 2:
        return [
            "Deflated Sharpe Ratio: needs at least 2 completed trials with daily equity "
            f"({len(returns)} here).",
            *left_out,
        ]
    # PBO's large array operations release the GIL: computed on a second thread while this one
    # takes the trials' moments (the report runs after the jobs, with the other core idle)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pbo") as pool:
        pbo = pool.submit(_pbo_line, returns) if len(returns) >= PBO_MIN_TRIALS else None
        moments = {num: sharpe_moments(r.to_numpy()) for num, r in returns.items()}
        valid = {num: m for num, m in moments.items() if m is not None}
        lines = [_dsr_line(valid, len(returns), rows)] if len(valid) >= 2 else []
        pbo_line = pbo.result() if pbo is not None else None
    if pbo_line is not None:
        lines.append(pbo_line)
    else:
        lines.append(
            f"Probability of Backtest Overfitting: needs at least {PBO_MIN_TRIALS} trials "
            f"({len(returns)} here)."
        )
    return lines + left_out


def _left_out_line(nums: list[int]) -> str:
    jobs = ", ".join(str(n) for n in sorted(nums))
    return (
        f"Left out of the Deflated Sharpe Ratio and PBO: job(s) {jobs}, whose {DAILY_FILE} "
        "could not be read (another job of the same trial stands in where there is one). "
        "Delete those job dirs and rerun the same sweep into the same hydra.sweep.dir: "
        "it reruns only them."
    )


def _dsr_line(
    moments: dict[int, tuple[float, int, float, float]], n_trials: int, rows: list[JobRow]
) -> str:
    best = max(moments, key=lambda num: moments[num][0])
    annual = next((_stat(r, "sharpe") for r in rows if r.num == best), None)
    sharpe, n, skew, kurt = moments[best]
    variance = float(np.var([m[0] for m in moments.values()], ddof=1))
    dsr, sr0 = deflated_sharpe_ratio(sharpe, n, skew, kurt, variance, n_trials)
    if dsr is None:
        return f"Deflated Sharpe Ratio of job {best}: undefined (degenerate return moments)."
    verdict = (
        "significant at 5 %: unlikely to be luck of the draw"
        if dsr >= 0.95
        else "not significant at 5 %: the best of this many trials could look this good by luck"
    )
    return (
        f"Deflated Sharpe Ratio of the best job (job {best}, Sharpe "
        f"{'-' if annual is None else f'{annual:.2f}'} annualised, {sharpe:.4f} daily) over "
        f"{n_trials} trials: **{dsr:.3f}**, the probability that its true Sharpe exceeds "
        f"{sr0:.4f}, the best that {n_trials} unskilled trials would show; {verdict}."
    )


def _pbo_matrix(returns: dict[int, pd.Series]) -> np.ndarray:
    """Return ``pd.concat(returns, axis=1, join="inner").dropna().to_numpy()``.

    The trials of a sweep over one universe and window share their days (``trial_returns``
    gives them one index object): their returns are stacked as they are and the days with a
    NaN dropped, without aligning the indexes (~1 ms a trial).
    """
    series = list(returns.values())
    index = series[0].index
    if index.is_unique and all(s.index is index or s.index.equals(index) for s in series):
        stacked = np.vstack([s.to_numpy(dtype=np.float64) for s in series])  # trials x days
        keep = ~np.isnan(stacked).any(axis=0)
        if not keep.all():
            stacked = stacked.compress(keep, axis=1)
        return stacked.T  # days x trials, column-major as pandas' to_numpy() of the frame
    return pd.concat(returns, axis=1, join="inner").dropna().to_numpy()


def _pbo_line(returns: dict[int, pd.Series]) -> str:
    matrix = _pbo_matrix(returns)
    splits = PBO_SPLITS
    while splits > 2 and len(matrix) < 2 * splits:
        splits -= 2
    if len(matrix) < 2 * splits:
        return f"Probability of Backtest Overfitting: too few common days ({len(matrix)})."
    result = pbo_cscv_batched(matrix, n_splits=splits)
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


def _stat(row: JobRow, key: str) -> float | None:
    value = (row.stats or {}).get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    return value if key in NOT_RANKABLE else None


def _typed(row: JobRow, key: str, given: str | None) -> Any:
    """The override's value as the job's resolved config holds it (int, float, list), else text."""
    for flat in (row.behaviour, row.performance):
        if key in flat:
            value = flat[key]
            return value if isinstance(value, (int, float, str, bool)) else str(value)
    return given


def _sort_key(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))
