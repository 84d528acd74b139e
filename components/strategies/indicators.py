"""Indicator maths shared by strategies: deterministic, so a value never depends on chunking."""

from __future__ import annotations

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
    total = values[:n].copy()  # column j of the window view is the slice values[j : j + n]
    for j in range(1, window):
        total += values[j : j + n]
    return total


def previous_nonzero(signs: np.ndarray, initial: int) -> np.ndarray:
    """Return, for each position, the most recent non-zero sign strictly before it (or ``initial``)."""
    n = len(signs)
    idx = np.where(signs != 0, np.arange(n), -1)
    last = np.maximum.accumulate(idx) if n else idx
    prev_idx = np.concatenate(([-1], last[:-1])) if n else last
    return np.where(prev_idx >= 0, signs[np.maximum(prev_idx, 0)], initial).astype(np.int64)
