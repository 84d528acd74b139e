"""Overfitting guards against worked examples computed by hand (issue 12)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.results.overfit import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    pbo_cscv,
    probabilistic_sharpe_ratio,
    sharpe_moments,
)


def test_dsr_when_paper_example_then_sr0_0_1132_and_dsr_0_9004() -> None:
    """Bailey and Lopez de Prado (2014), section 4: 100 trials, best annualised SR 2.5 over
    1,250 daily returns, V[SR] 0.5 annualised, skew -3, kurtosis 10 -> SR0 0.1132, DSR 0.9004.

    By hand: SR = 2.5 / sqrt(250) = 0.158114; sqrt(V) = sqrt(0.5 / 250) = 0.044721;
    SR0 = 0.044721 * (0.422784 * 2.326348 + 0.577216 * 2.679822) = 0.113172;
    DSR = Phi((0.158114 - 0.113172) * sqrt(1249) / sqrt(1 + 3 * 0.158114 + 9/4 * 0.025000))
        = Phi(1.588295 / 1.237019) = Phi(1.283970) = 0.900397.
    """
    # Arrange
    sharpe, variance = 2.5 / math.sqrt(250), 0.5 / 250
    # Act
    dsr, sr0 = deflated_sharpe_ratio(sharpe, 1250, -3.0, 10.0, variance, 100)
    # Assert
    assert sr0 == pytest.approx(0.113172, abs=1e-6)
    assert round(sr0, 4) == 0.1132
    assert dsr == pytest.approx(0.900397, abs=1e-6)
    assert round(dsr, 4) == 0.9004


def test_expected_max_sharpe_when_one_trial_or_no_spread_then_zero() -> None:
    assert expected_max_sharpe(0.01, 1) == 0.0
    assert expected_max_sharpe(0.0, 50) == 0.0


def test_psr_when_normal_returns_then_phi_of_sr_sqrt_n_minus_1() -> None:
    """Skew 0, kurtosis 3: PSR(0) = Phi(SR sqrt(n-1) / sqrt(1 + SR^2 / 2)).

    SR 0.1, n 101: 0.1 * 10 / sqrt(1.005) = 0.997509 -> Phi = 0.840741.
    """
    assert probabilistic_sharpe_ratio(0.1, 101, 0.0, 3.0) == pytest.approx(0.840741, abs=1e-6)


def test_sharpe_moments_when_four_returns_then_hand_values() -> None:
    """r = 1, 2, 3, 6 (per cent): mean 3, sample std sqrt(14/3), m2 3.5, m3 4.5, m4 24.5 (deviations -2, -1, 0, 3)."""
    sharpe, n, skew, kurt = sharpe_moments(np.array([0.01, 0.02, 0.03, 0.06]))
    assert n == 4
    assert sharpe == pytest.approx(3 / math.sqrt(14 / 3), rel=1e-12)
    assert skew == pytest.approx(4.5 / 3.5**1.5, rel=1e-12)
    assert kurt == pytest.approx(24.5 / 3.5**2, rel=1e-12) == 2.0


# 4 periods x 3 trials (per cent). With S = 4 blocks of one period, a split's Sharpe over two
# periods (a, b) is (a + b) / (sqrt(2) |a - b|), so trials rank by q = (a + b) / |a - b|:
#   periods {0,1}: q = 2, 2, 1   {2,3}: 1, 1, 2   {0,2}: 3, 1, 3
#   periods {1,3}: 1, 3, 1       {0,3}: 1, 5, 5   {1,2}: 5, 1, 1
# IS {0,1} -> best trial 0 (first of a tie); OOS {2,3} it ties trial 1 for last: rank 1.5,
# w = 1.5 / 4, lambda = ln(0.6). IS {0,2} and {0,3} give the same; IS {1,2}, {1,3}, {2,3} leave
# the IS best alone at the bottom OOS: rank 1, w = 1/4, lambda = ln(1/3). Every lambda <= 0.
ANTI_PERSISTENT = np.array([[1, 3, 2], [3, 1, 0], [2, 0, 1], [0, 2, 3]]) / 100


def test_pbo_when_in_sample_best_always_loses_out_of_sample_then_pbo_one() -> None:
    # Act
    result = pbo_cscv(ANTI_PERSISTENT, n_splits=4)
    # Assert
    assert result.n_combinations == 6
    assert result.logits == pytest.approx([math.log(0.6)] * 3 + [math.log(1 / 3)] * 3)
    assert result.pbo == 1.0


def test_pbo_when_one_trial_dominates_every_split_then_pbo_zero() -> None:
    """A fourth trial with q >= 21 in every pair is best IS and OOS: rank 4, w = 4/5, lambda = ln 4."""
    # Arrange
    matrix = np.c_[ANTI_PERSISTENT, np.array([10, 11, 10.5, 10.8]) / 100]
    # Act
    result = pbo_cscv(matrix, n_splits=4)
    # Assert
    assert result.logits == pytest.approx([math.log(4)] * 6)
    assert result.pbo == 0.0


def test_pbo_when_odd_splits_then_value_error_names_the_inputs() -> None:
    with pytest.raises(ValueError, match=r"^pbo_cscv needs >= 2 trials and an even n_splits"):
        pbo_cscv(ANTI_PERSISTENT, n_splits=3)
