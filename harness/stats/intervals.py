"""Means and paired differences with one-sided bounds at any level, and the p-values those bounds give.

Which interval, by what the values are (docs/decisions.md has their measured coverage):
  0/1 values           Wilson's score interval (a mean) or Newcombe's hybrid score interval for
                       paired proportions (a difference), both continuity-corrected: nominal coverage down to 10 items and near
                       0 or 1, where the percentile bootstrap covers 64% (n = 20, p = 0.95)
  other values         studentized bootstrap (bootstrap-t) from `MIN_CONTINUOUS` items up; fewer
                       items: no interval ("cannot tell")
  no spread at all     every value equal (all 0.7, or two candidates that agree on every item): the
                       mean can only differ where an unseen item differs, at most the metric's range
                       times the upper bound on the share of such items (0 of n seen): never [x, x]
  a NaN                no interval: a NaN item is never dropped silently
A weighted sum over suites (the objective) and the training-seed term: combined.py.

Every bound is one-sided at level alpha: `lower(0.05)` is a 95% lower bound; a two-sided 95% interval
is `interval(0.05)` = (lower(0.025), upper(0.025)). A one-sided p-value is the smallest alpha at which
the bound clears the threshold, so a test and its interval never disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist

import numpy as np
import pandas as pd

N_BOOT = 2000
MIN_CONTINUOUS = 8  # items below which a non-0/1 mean gets no interval (bootstrap-t is erratic there)
P_FLOOR = 1e-12  # the smallest p-value reported (the bisection's lower end)
NAN = float("nan")


def z_of(alpha: float) -> float:
    return NormalDist().inv_cdf(1 - alpha)


class Estimate:
    """A mean or a mean difference: `value`, the items it rests on (`n`), the `method`, and one-sided
    bounds at any level. Subclasses give `lower` and `upper`."""

    value: float = NAN
    n: int = 0
    method: str = ""

    def lower(self, alpha: float) -> float:
        raise NotImplementedError

    def upper(self, alpha: float) -> float:
        raise NotImplementedError

    def interval(self, alpha: float = 0.05) -> tuple[float, float]:
        """The two-sided (1 - alpha) interval."""
        return self.lower(alpha / 2), self.upper(alpha / 2)

    def p_above(self, threshold: float) -> float:
        """One-sided p-value for "the true value is above `threshold`"."""
        return _p_value(self.lower, threshold, above=True, other=lambda: _p_value(self.upper, threshold, above=False))

    def p_below(self, threshold: float) -> float:
        """One-sided p-value for "the true value is below `threshold`"."""
        return _p_value(self.upper, threshold, above=False, other=lambda: _p_value(self.lower, threshold, above=True))


def _p_value(bound, threshold: float, above: bool, other=None) -> float:
    """The smallest alpha in [P_FLOOR, 0.5] at which `bound(alpha)` is past `threshold` (bisection on
    log alpha: the bound moves monotonically with alpha). Where even alpha = 0.5 is not past it, the
    estimate lies on the other side: 1 - the other side's p."""
    def past(alpha):
        b = bound(alpha)
        return b > threshold if above else b < threshold

    if math.isnan(bound(0.5)):
        return NAN
    if not past(0.5):
        return 1.0 - other() if other is not None else 0.5
    lo, hi = math.log(P_FLOOR), math.log(0.5)
    if past(P_FLOOR):
        return P_FLOOR
    for _ in range(48):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if past(math.exp(mid)) else (mid, hi)
    return math.exp(hi)


# ---------------------------------------------------------------- 0/1 values


@dataclass
class Wilson(Estimate):
    """k successes of n: Wilson's score interval (continuity-corrected)."""

    k: int
    n: int
    method: str = "wilson"

    def __post_init__(self):
        self.value = self.k / self.n if self.n else NAN

    def _bounds(self, alpha: float) -> tuple[float, float]:
        if not self.n:
            return NAN, NAN
        return wilson_bounds(self.value, self.n, z_of(alpha))

    def lower(self, alpha: float) -> float:
        return self._bounds(alpha)[0]

    def upper(self, alpha: float) -> float:
        return self._bounds(alpha)[1]


def wilson_bounds(p: float, n: int, z: float) -> tuple[float, float]:
    """Wilson's score bounds for a proportion p of n at normal quantile z, with continuity correction
    (Newcombe 1998, method 4): the uncorrected one-sided bound covers 82% at n = 10, p = 0.98."""
    lo = 0.0 if p <= 0 else (2 * n * p + z * z - 1 - z * math.sqrt(max(z * z - 2 - 1 / n + 4 * p * (n * (1 - p) + 1), 0.0))) / (2 * (n + z * z))
    hi = 1.0 if p >= 1 else (2 * n * p + z * z + 1 + z * math.sqrt(max(z * z + 2 - 1 / n + 4 * p * (n * (1 - p) - 1), 0.0))) / (2 * (n + z * z))
    return max(0.0, lo), min(1.0, hi)


@dataclass
class Newcombe(Estimate):
    """a - b for paired 0/1 values: Newcombe's hybrid score interval (1998, method 11), from the two
    marginal continuity-corrected Wilson intervals and the pairs' correlation phi."""

    both: int  # a = 1, b = 1
    only_a: int  # a = 1, b = 0
    only_b: int  # a = 0, b = 1
    neither: int
    method: str = "newcombe"

    def __post_init__(self):
        self.n = self.both + self.only_a + self.only_b + self.neither
        self.p1, self.p2 = (self.both + self.only_a) / self.n, (self.both + self.only_b) / self.n
        self.value = self.p1 - self.p2
        margins = (self.both + self.only_a) * (self.only_b + self.neither) * (self.both + self.only_b) * (self.only_a + self.neither)
        self.phi = (self.both * self.neither - self.only_a * self.only_b) / math.sqrt(margins) if margins else 0.0

    def lower(self, alpha: float) -> float:
        z = z_of(alpha)
        if not self.only_a + self.only_b:  # no discordant pair: phi = 1 collapses the interval; bound the discordance instead
            return -wilson_bounds(0.0, self.n, z)[1]
        l1, _ = wilson_bounds(self.p1, self.n, z)
        _, u2 = wilson_bounds(self.p2, self.n, z)
        d = (self.p1 - l1) ** 2 - 2 * self.phi * (self.p1 - l1) * (u2 - self.p2) + (u2 - self.p2) ** 2
        return max(-1.0, self.value - math.sqrt(max(d, 0.0)))

    def upper(self, alpha: float) -> float:
        z = z_of(alpha)
        if not self.only_a + self.only_b:
            return wilson_bounds(0.0, self.n, z)[1]
        _, u1 = wilson_bounds(self.p1, self.n, z)
        l2, _ = wilson_bounds(self.p2, self.n, z)
        d = (u1 - self.p1) ** 2 - 2 * self.phi * (u1 - self.p1) * (self.p2 - l2) + (self.p2 - l2) ** 2
        return min(1.0, self.value + math.sqrt(max(d, 0.0)))


# ---------------------------------------------------------------- other values


@lru_cache(maxsize=16)
def _resampling_plan(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) resampling indices, the same for every call with this n: decisions are reproducible."""
    return np.random.default_rng(seed).integers(0, n, (n_boot, n), dtype=np.int32)


@dataclass
class BootstrapT(Estimate):
    """The mean of `x` with a studentized bootstrap: t* = (mean* - mean) / se* over resamples, bounds
    mean - t*_q * se, clipped to what the values can reach (`bounds`)."""

    x: np.ndarray = field(repr=False)
    bounds: tuple[float, float] | None = None
    seed: int = 0
    method: str = "bootstrap-t"

    def __post_init__(self):
        self.n = len(self.x)
        self.value = float(self.x.mean())
        self.se = float(self.x.std(ddof=1) / math.sqrt(self.n))
        samples = self.x[_resampling_plan(self.n, N_BOOT, self.seed)]
        means, ses = samples.mean(axis=1), samples.std(axis=1, ddof=1) / math.sqrt(self.n)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A resample without spread: t is 0 where its mean is the sample's, else infinite.
            t = np.where(ses > 0, (means - self.value) / np.where(ses > 0, ses, 1), np.sign(means - self.value) * np.inf)
        self.t = np.sort(t)

    # The t* quantiles are taken without interpolation, outward: resamples without spread give
    # infinite t*, and interpolating between two infinities is NaN. Where most items sit at one bound,
    # most resamples miss the few that do not and the t* quantile is infinite; the bound is then the
    # score bound of a proportion (Wilson's, continuity-corrected, on the values scaled to [0, 1]),
    # valid for any values within their range because their variance is at most that of 0/1 values.
    def _bound(self, alpha: float, low: bool) -> float:
        q = float(np.quantile(self.t, 1 - alpha, method="higher") if low else np.quantile(self.t, alpha, method="lower"))
        if math.isfinite(q):
            v = self.value - q * self.se
            return v if self.bounds is None else min(max(v, self.bounds[0]), self.bounds[1])
        if self.bounds is None:
            return NAN  # unbounded values: an infinite bound says nothing
        lo, hi = self.bounds
        b = wilson_bounds((self.value - lo) / (hi - lo), self.n, z_of(alpha))[0 if low else 1]
        return lo + b * (hi - lo)

    def lower(self, alpha: float) -> float:
        return self._bound(alpha, True)

    def upper(self, alpha: float) -> float:
        return self._bound(alpha, False)


@dataclass
class NoSpread(Estimate):
    """Every value equal to `value`: the true mean differs only where an unseen item differs, by at
    most the range; the share of such items is bounded by Wilson's upper bound for 0 of n."""

    value: float
    n: int
    bounds: tuple[float, float] = (0.0, 1.0)
    method: str = "no-spread"

    def lower(self, alpha: float) -> float:
        return self.value - wilson_bounds(0.0, self.n, z_of(alpha))[1] * (self.value - self.bounds[0])

    def upper(self, alpha: float) -> float:
        return self.value + wilson_bounds(0.0, self.n, z_of(alpha))[1] * (self.bounds[1] - self.value)


@dataclass
class Undetermined(Estimate):
    """No interval: `why` says (NaN items, too few items, nothing paired)."""

    why: str
    value: float = NAN
    n: int = 0
    method: str = "none"

    def lower(self, alpha: float) -> float:
        return NAN

    def upper(self, alpha: float) -> float:
        return NAN


# ---------------------------------------------------------------- from per-item values


def _is_binary(x: np.ndarray) -> bool:
    return bool(np.all((x == 0) | (x == 1)))


def _unit(x: np.ndarray) -> bool:
    return bool(np.all((x >= 0) & (x <= 1)))


def mean_estimate(values) -> Estimate:
    """The mean of per-item values (see the module docstring for the method)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Undetermined("no items")
    if np.isnan(x).any():
        return Undetermined(f"{int(np.isnan(x).sum())} NaN item(s)", n=len(x))
    if _is_binary(x):
        return Wilson(int(x.sum()), len(x))
    bounds = (0.0, 1.0) if _unit(x) else None
    return _continuous(x, bounds)


def _continuous(x: np.ndarray, bounds) -> Estimate:
    if np.all(x == x[0]):
        return NoSpread(float(x[0]), len(x), bounds) if bounds else Undetermined("no spread in unbounded values", n=len(x))
    if len(x) < MIN_CONTINUOUS:
        return Undetermined(f"{len(x)} items: a non-0/1 mean needs {MIN_CONTINUOUS}", n=len(x))
    return BootstrapT(x, bounds)


def difference_estimate(a: pd.Series, b: pd.Series) -> Estimate:
    """a - b on the items both have (aligned on the index: item ids)."""
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    if joined.empty:
        return Undetermined("no items in common")
    x, y = joined["a"].to_numpy(dtype=float), joined["b"].to_numpy(dtype=float)
    if np.isnan(x).any() or np.isnan(y).any():
        return Undetermined(f"{int(np.isnan(x).sum() + np.isnan(y).sum())} NaN item(s)", n=len(x))
    if _is_binary(x) and _is_binary(y):
        xa, yb = x.astype(bool), y.astype(bool)
        return Newcombe(int((xa & yb).sum()), int((xa & ~yb).sum()), int((~xa & yb).sum()), int((~xa & ~yb).sum()))
    return _continuous(x - y, (-1.0, 1.0) if _unit(x) and _unit(y) else None)


def summary(e: Estimate, alpha: float = 0.05) -> dict:
    """value, stderr, (1 - alpha) interval, n: the columns of scores.json and the leaderboard."""
    low, high = e.interval(alpha)
    return {"value": e.value, "stderr": getattr(e, "se", _stderr(e)), "ci_low": low, "ci_high": high, "n": e.n}


def _stderr(e: Estimate) -> float:
    if isinstance(e, Wilson) and e.n > 1:
        return math.sqrt(e.value * (1 - e.value) / (e.n - 1))  # = the sample sd / sqrt(n) of 0/1 values
    return 0.0 if isinstance(e, NoSpread) else NAN


def mean_ci(values, alpha: float = 0.05) -> dict:
    """Mean, stderr and a (1 - alpha) interval of per-item values (NaN interval where it cannot tell)."""
    return summary(mean_estimate(values), alpha)
