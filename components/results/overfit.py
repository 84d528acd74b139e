"""Overfitting guards: the Probabilistic and Deflated Sharpe Ratios and PBO by CSCV.

- PSR (Bailey and Lopez de Prado 2012, "The Sharpe Ratio Efficient Frontier"): the probability
  that the true Sharpe ratio exceeds a benchmark, given the sample's length, skew and kurtosis.
- DSR (Bailey and Lopez de Prado 2014, "The Deflated Sharpe Ratio"): PSR against the Sharpe ratio
  the best of N unskilled trials would reach by luck.
- PBO (Bailey, Borwein, Lopez de Prado and Zhu 2016, "The Probability of Backtest Overfitting"):
  combinatorially symmetric cross-validation over the trials' per-period returns.

Sharpe ratios here are per period (daily), not annualised: that is what the formulas take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()


def sharpe_moments(returns: np.ndarray) -> tuple[float, int, float, float] | None:
    """Return (per-period Sharpe, n, skewness, kurtosis) of ``returns``; None when undefined.

    Sharpe uses the sample standard deviation (ddof 1, as empyrical); skewness and kurtosis are
    the plain moment ratios (kurtosis 3 for a normal distribution, not the excess).
    """
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 3:
        return None
    std = float(r.std(ddof=1))
    if not std > 0:
        return None
    centred = r - r.mean()
    m2 = float(np.mean(centred**2))
    skew = float(np.mean(centred**3)) / m2**1.5
    kurt = float(np.mean(centred**4)) / m2**2
    return float(r.mean()) / std, len(r), skew, kurt


def probabilistic_sharpe_ratio(
    sharpe: float, n: int, skew: float, kurt: float, benchmark: float = 0.0
) -> float | None:
    """Return P(true Sharpe > ``benchmark``) = Phi((SR - SR*) sqrt(n-1) / sqrt(1 - g3 SR + (g4-1)/4 SR^2))."""
    var = 1 - skew * sharpe + (kurt - 1) / 4 * sharpe**2
    if n < 2 or not var > 0:
        return None
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(var))


def expected_max_sharpe(sharpe_variance: float, n_trials: int) -> float:
    """Return SR0: the expected maximum Sharpe of ``n_trials`` unskilled trials (DSR's benchmark).

    SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))), gamma = Euler's.
    """
    if n_trials < 2 or not sharpe_variance > 0:
        return 0.0
    z1 = _NORMAL.inv_cdf(1 - 1 / n_trials)
    z2 = _NORMAL.inv_cdf(1 - 1 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe_ratio(
    sharpe: float, n: int, skew: float, kurt: float, sharpe_variance: float, n_trials: int
) -> tuple[float | None, float]:
    """Return (DSR, SR0) of the best trial: its PSR against the expected maximum of the trials."""
    sr0 = expected_max_sharpe(sharpe_variance, n_trials)
    return probabilistic_sharpe_ratio(sharpe, n, skew, kurt, benchmark=sr0), sr0


@dataclass(frozen=True)
class PboResult:
    pbo: (
        float  # share of the splits whose in-sample best ranks at or below the out-of-sample median
    )
    logits: np.ndarray  # lambda per split: ln(w / (1 - w)), w = OOS relative rank of the IS best
    n_splits: int  # S, the number of row blocks
    n_combinations: int  # C(S, S/2)


def pbo_cscv(returns: np.ndarray, n_splits: int = 16) -> PboResult:
    """Return the Probability of Backtest Overfitting of trials by CSCV.

    ``returns`` is T x N: one row per period, one column per trial. The rows are cut into
    ``n_splits`` (S, even) contiguous blocks; for every choice of S/2 blocks as in-sample (IS), the
    rest out-of-sample (OOS), the trial with the best IS Sharpe is ranked among all trials OOS
    (rank 1 = worst, ties averaged), w = rank / (N + 1), and lambda = ln(w / (1 - w)).
    PBO = the share of splits with lambda <= 0.
    """
    m = np.asarray(returns, dtype=np.float64)
    t, n = m.shape
    if n < 2 or n_splits < 2 or n_splits % 2 or t < n_splits:
        raise ValueError(
            f"pbo_cscv needs >= 2 trials and an even n_splits <= periods, got {n} trial(s), "
            f"n_splits={n_splits}, {t} period(s)"
        )
    blocks = np.array_split(np.arange(t), n_splits)
    sums = np.array([m[b].sum(axis=0) for b in blocks])  # S x N
    squares = np.array([(m[b] ** 2).sum(axis=0) for b in blocks])
    counts = np.array([len(b) for b in blocks], dtype=np.float64)
    logits = []
    for chosen in combinations(range(n_splits), n_splits // 2):
        is_mask = np.zeros(n_splits, dtype=bool)
        is_mask[list(chosen)] = True
        best = int(np.argmax(_block_sharpe(sums, squares, counts, is_mask)))
        oos = _block_sharpe(sums, squares, counts, ~is_mask)
        rank = 1 + np.sum(oos < oos[best]) + 0.5 * (np.sum(oos == oos[best]) - 1)
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
    lam = np.array(logits)
    return PboResult(float(np.mean(lam <= 0)), lam, n_splits, len(lam))


def _block_sharpe(
    sums: np.ndarray, squares: np.ndarray, counts: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Per-trial Sharpe (mean / sample std) of the rows of the blocks in ``mask``."""
    k = counts[mask].sum()
    total, total_sq = sums[mask].sum(axis=0), squares[mask].sum(axis=0)
    mean = total / k
    var = (total_sq - k * mean**2) / (k - 1) if k > 1 else np.full_like(mean, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = mean / np.sqrt(var)
    return np.nan_to_num(sharpe, nan=-np.inf)


def pbo_cscv_batched(returns: np.ndarray, n_splits: int = 16, batch: int = 256) -> PboResult:
    """Return exactly ``pbo_cscv``, computed many splits at a time.

    ``pbo_cscv`` loops over the C(16, 8) = 12,870 splits in Python (~2 s a sweep, whatever its
    size); this evaluates ``batch`` splits per numpy call with the same operations in the same
    order (block sums added in ascending block order, the same mean / sample-std Sharpe, the same
    rank and logit), so the result is bit-for-bit the same (``tests/test_sweep_speed.py``).
    Memory: ``batch`` x S/2 x trials floats (~16 MB for 1,000 trials).
    """
    m = np.asarray(returns, dtype=np.float64)
    t, n = m.shape
    if n < 2 or n_splits < 2 or n_splits % 2 or t < n_splits:
        return pbo_cscv(m, n_splits=n_splits)  # raises its ValueError
    blocks = np.array_split(np.arange(t), n_splits)
    sums = np.array([m[b].sum(axis=0) for b in blocks])  # S x N
    squares = np.array([(m[b] ** 2).sum(axis=0) for b in blocks])
    counts = np.array([len(b) for b in blocks], dtype=np.float64)
    chosen = np.array(list(combinations(range(n_splits), n_splits // 2)), dtype=np.int64)
    in_sample = np.zeros((len(chosen), n_splits), dtype=bool)
    in_sample[np.arange(len(chosen))[:, None], chosen] = True
    rest = np.nonzero(~in_sample)[1].reshape(len(chosen), n_splits - n_splits // 2)
    logits = np.empty(len(chosen))
    total = len(chosen)
    # In lexicographic order the complement of split i is split total-1-i, so the out-of-sample
    # blocks of split i are the in-sample blocks of its mirror, added in the same ascending order:
    # one Sharpe matrix serves a split and its mirror (half the work, the same floats).
    assert total % 2 == 0 and bool((rest == chosen[::-1]).all()), "splits are not mirrored"
    half = total // 2
    for lo in range(0, half, batch):
        hi = min(lo + batch, half)
        front = _blocks_sharpe(sums, squares, counts, chosen[lo:hi])  # splits lo..hi-1
        back = _blocks_sharpe(sums, squares, counts, chosen[total - hi : total - lo])
        # row j of back[::-1] is split total-1-(lo+j): the complement of split lo+j
        logits[lo:hi] = _split_logits(front, back[::-1], n)
        logits[total - hi : total - lo] = _split_logits(back, front[::-1], n)
    return PboResult(float(np.mean(logits <= 0)), logits, n_splits, len(logits))


def _split_logits(is_sharpe: np.ndarray, oos: np.ndarray, n: int) -> list[float]:
    """Per split (row): the logit of the out-of-sample relative rank of the in-sample best."""
    best = np.argmax(is_sharpe, axis=1)
    at_best = oos[np.arange(len(best)), best][:, None]
    rank = 1 + np.sum(oos < at_best, axis=1) + 0.5 * (np.sum(oos == at_best, axis=1) - 1)
    w = rank / (n + 1)
    return [math.log(x / (1 - x)) for x in w.tolist()]


def _blocks_sharpe(
    sums: np.ndarray, squares: np.ndarray, counts: np.ndarray, picks: np.ndarray
) -> np.ndarray:
    """Per split (row of ``picks``: block indices, ascending) and trial: mean / sample std."""
    k = counts[picks[:, 0]].copy()
    total, total_sq = sums[picks[:, 0]].copy(), squares[picks[:, 0]].copy()
    for j in range(1, picks.shape[1]):  # the order in which pbo_cscv's masked sum adds blocks
        k += counts[picks[:, j]]
        total += sums[picks[:, j]]
        total_sq += squares[picks[:, j]]
    mean = total / k[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(
            (k > 1)[:, None], (total_sq - k[:, None] * mean**2) / (k[:, None] - 1), np.nan
        )
        sharpe = mean / np.sqrt(var)
    return np.nan_to_num(sharpe, nan=-np.inf)
