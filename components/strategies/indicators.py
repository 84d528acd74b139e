"""Indicator maths shared by strategies: deterministic, so a value never depends on chunking."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rolling_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Return the sum of each full window, added left to right as Python's ``sum`` does.

    A fixed summation order makes each window's sum a function of its contents alone, so the
    result is identical whatever chunk the window falls in (pandas' online rolling sum is not).
    """
    n = len(values) - window + 1
    if n < 1:
        return np.empty(0, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    # column j of the window view is the slice values[j : j + n]
    total = values[:n] + values[1 : 1 + n] if window > 1 else values[:n].copy()
    for j in range(2, window):
        total += values[j : j + n]
    return total


def rolling_sums(values: np.ndarray, windows: Sequence[int]) -> list[np.ndarray]:
    """Return ``[rolling_sum(values, w) for w in windows]``, the same bits, cheaper.

    A longer window's sum starts from a shorter one's: its first terms are the same additions
    in the same order, so only the remaining terms are added.
    """
    values = np.asarray(values, dtype=np.float64)
    sums: dict[int, np.ndarray] = {}
    total: np.ndarray | None = None
    done = 0  # total[i] is the sum of values[i : i + done]
    for window in sorted(set(windows)):
        n = len(values) - window + 1
        if total is None or n < 1:
            sums[window] = total = rolling_sum(values, window)
        else:  # a new array: the shorter window's sums are kept
            total = total[:n] + values[done : done + n]
            for j in range(done + 1, window):
                total += values[j : j + n]
            sums[window] = total
        done = window
    return [sums[window] for window in windows]


def previous_nonzero(signs: np.ndarray, initial: int) -> np.ndarray:
    """Return, for each position, the most recent non-zero sign strictly before it (or ``initial``)."""
    n = len(signs)
    idx = np.where(signs != 0, np.arange(n), -1)
    last = np.maximum.accumulate(idx) if n else idx
    prev_idx = np.concatenate(([-1], last[:-1])) if n else last
    return np.where(prev_idx >= 0, signs[np.maximum(prev_idx, 0)], initial).astype(np.int64)
