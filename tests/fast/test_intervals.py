"""Intervals hold their level at small n and near 0 or 1 (exact enumeration for 0/1 means, seeded
simulation otherwise), never have zero width, never drop a NaN, and agree with their p-values."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.stats.intervals import Newcombe, Wilson, difference_estimate, mean_ci, mean_estimate

LEVEL = 0.95
SLACK = 0.02  # the acceptance: within 2 points of nominal (discrete data over-covers where no interval can hit 95%)


@pytest.mark.parametrize("n", [10, 20, 50])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.98])
def test_a_01_mean_covers_its_level_exactly_enumerated(n, p):
    pmf = stats.binom.pmf(np.arange(n + 1), n, p)
    two = sum(w for k, w in enumerate(pmf) if Wilson(k, n).interval(0.05)[0] <= p <= Wilson(k, n).interval(0.05)[1])
    lower = sum(w for k, w in enumerate(pmf) if Wilson(k, n).lower(0.05) <= p)
    upper = sum(w for k, w in enumerate(pmf) if Wilson(k, n).upper(0.05) >= p)
    assert min(two, lower, upper) >= LEVEL - SLACK, (two, lower, upper)
    # mean_ci takes the same route from raw values
    x = np.r_[np.ones(round(n * p)), np.zeros(n - round(n * p))]
    assert mean_ci(x)["ci_low"] == pytest.approx(Wilson(round(n * p), n).interval(0.05)[0])


@pytest.mark.parametrize("n", [10, 20, 50])
@pytest.mark.parametrize("p1,p2,rho", [(0.5, 0.5, 0.0), (0.9, 0.9, 0.5), (0.98, 0.98, 0.3), (0.9, 0.8, 0.3)])
def test_a_paired_01_difference_covers_its_level(n, p1, p2, rho):
    rng = np.random.default_rng(n)
    cov = rho * math.sqrt(p1 * (1 - p1) * p2 * (1 - p2))
    both = p1 * p2 + cov
    cells = rng.multinomial(n, [both, p1 - both, p2 - both, 1 - p1 - p2 + both], 2000)
    covered = [lo <= p1 - p2 <= hi for lo, hi in (Newcombe(*c).interval(0.05) for c in cells)]
    assert np.mean(covered) >= LEVEL - SLACK


@pytest.mark.parametrize("n", [20, 50])
@pytest.mark.parametrize("mean", [0.5, 0.9])
def test_a_continuous_mean_covers_its_level(n, mean):
    rng = np.random.default_rng(7)
    draws = rng.beta(mean * 4, (1 - mean) * 4, (600, n))
    covered = [lo <= mean <= hi for lo, hi in (mean_estimate(x).interval(0.05) for x in draws)]
    assert np.mean(covered) >= LEVEL - SLACK - 0.01  # 600 draws: about 1 point of simulation noise


def test_no_interval_has_zero_width():
    for values in ([1.0], [0.0] * 5, [1.0] * 40, [0.7] * 12):
        low, high = mean_estimate(values).interval(0.05)
        assert high - low > 0, values
    same = pd.Series([1.0, 0.0] * 30)
    low, high = difference_estimate(same, same).interval(0.05)
    assert low < 0 < high
    partial = pd.Series(np.linspace(0.1, 0.9, 30))
    low, high = difference_estimate(partial, partial).interval(0.05)
    assert low < 0 < high


def test_one_item_at_one_cannot_clear_a_high_bar():
    assert mean_estimate([1.0]).lower(0.05) < 0.5


def test_nan_items_are_never_dropped():
    e = mean_estimate([1.0, math.nan, 0.0] * 10)
    assert math.isnan(e.lower(0.05)) and "NaN" in e.why
    d = difference_estimate(pd.Series([1.0, 0.0, math.nan] * 10), pd.Series([1.0, 0.0, 1.0] * 10))
    assert math.isnan(d.interval(0.05)[0]) and "NaN" in d.why


def test_too_few_continuous_items_cannot_tell():
    assert math.isnan(mean_estimate([0.2, 0.5, 0.9]).lower(0.05))


@pytest.mark.parametrize("estimate", [Wilson(31, 50), Newcombe(30, 9, 2, 9), mean_estimate(np.linspace(0.2, 0.95, 40) ** 2)])
def test_p_values_agree_with_the_bounds(estimate):
    for threshold in (-0.1, 0.0, 0.05, 0.3, 0.5, 0.6):
        for alpha in (0.01, 0.05, 0.2):
            assert (estimate.p_above(threshold) < alpha) == (estimate.lower(alpha) > threshold) or \
                abs(estimate.lower(alpha) - threshold) < 1e-6
            assert (estimate.p_below(threshold) < alpha) == (estimate.upper(alpha) < threshold) or \
                abs(estimate.upper(alpha) - threshold) < 1e-6


def test_scores_mostly_at_the_top_get_a_finite_interval():
    """Most resamples of 49 ones and one 0.5 have no spread (t* infinite): the bounds must stay numbers."""
    x = np.r_[np.ones(49), 0.5]
    e = mean_estimate(x)
    low, high = e.interval(0.05)
    assert 0 < low < e.value <= high <= 1
    d = difference_estimate(pd.Series(x), pd.Series(np.zeros(50)))
    assert d.lower(0.05) > 0.5 and d.p_above(0.0) < 1e-3
