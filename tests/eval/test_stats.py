"""Paired statistics against hand-computed values."""

import pytest

from miva.eval.stats import (
    binomial_cdf_half,
    compare_paired,
    majority_share,
    mcnemar_exact,
    wilson,
)


def test_wilson_interval_of_half():
    # p = 0.5, n = 10: centre 0.5, half-width 1.96 * sqrt(0.025 + 3.8416 / 400) / 1.38416
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4)
    assert hi == pytest.approx(0.7634, abs=1e-4)


def test_wilson_edges():
    assert wilson(0, 0) == (0.0, 0.0)
    lo, hi = wilson(0, 20)
    assert lo == 0.0 and 0.15 < hi < 0.17  # 3.8416 / 23.8416 = 0.1611
    assert wilson(20, 20)[1] == 1.0


def test_binomial_cdf_half():
    assert binomial_cdf_half(0, 5) == pytest.approx(1 / 32)
    assert binomial_cdf_half(1, 10) == pytest.approx(11 / 1024)
    assert binomial_cdf_half(5, 10) == pytest.approx(638 / 1024)
    assert binomial_cdf_half(-1, 4) == 0.0
    assert binomial_cdf_half(4, 4) == 1.0
    # large n stays finite and symmetric: P(X <= 499) for n = 1000 is just under 1/2
    assert binomial_cdf_half(499, 1000) == pytest.approx(0.5 - 0.0252 / 2, abs=1e-3)


def test_mcnemar_exact_hand_values():
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024)
    assert mcnemar_exact(1, 9) == mcnemar_exact(9, 1)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


def test_compare_paired_counts_discordant_items_only():
    a = [True, True, True, False, False, True]
    b = [True, False, False, False, True, True]
    cmp = compare_paired(a, b)
    assert (cmp.only_a, cmp.only_b, cmp.n) == (2, 1, 6)
    assert cmp.acc_a == pytest.approx(4 / 6) and cmp.acc_b == pytest.approx(3 / 6)
    assert cmp.gain_points == pytest.approx(100 / 6)
    assert cmp.p_value == pytest.approx(1.0)  # 2 * P(X <= 1 | n = 3) = 2 * 4 / 8
    with pytest.raises(ValueError):
        compare_paired([True], [True, False])


def test_majority_share():
    assert majority_share(["red", "red", "blue", [1, 2], [1, 2], [1, 2]]) == 0.5
    assert majority_share([]) == 0.0
