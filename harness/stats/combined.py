"""Estimates made of independent parts: the objective's weighted sum over suites (each suite is scored
on its own items), and the training-seed term of a configuration re-trained with other seeds.

Parts are combined by MOVER (method of variance estimates recovery, Zou & Donner 2008): the bound's
distance from the sum is the root of the sum of each part's squared, weighted distance from its own
estimate, so each part keeps its own method (Wilson, Newcombe, bootstrap-t) and its asymmetry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.stats.intervals import NAN, Estimate, Undetermined


@dataclass
class SeedNoise(Estimate):
    """The training-seed part of a configuration's score: mean 0, spread `sd` across its seeds'
    utilities, `k` seeds averaged, t-based bounds with `df` degrees of freedom."""

    sd: float
    k: int
    df: int
    method: str = "seeds"

    def __post_init__(self):
        self.value, self.n = 0.0, 0

    def lower(self, alpha: float) -> float:
        return -self.upper(alpha)

    def upper(self, alpha: float) -> float:
        from scipy import stats

        return float(stats.t.ppf(1 - alpha, self.df)) * self.sd / math.sqrt(self.k) if self.df > 0 else NAN


@dataclass
class Weighted(Estimate):
    """sum_s w_s * theta_s over independent parts (suites, seed terms), by MOVER."""

    parts: list[tuple[Estimate, float]]
    method: str = "mover"

    def __post_init__(self):
        self.value = sum(w * e.value for e, w in self.parts) if self.parts else NAN
        self.n = sum(e.n for e, _ in self.parts)
        self.why = next((e.why for e, _ in self.parts if isinstance(e, Undetermined)), "")

    def _bound(self, alpha: float, low: bool) -> float:
        if not self.parts:
            return NAN
        total = 0.0
        for e, w in self.parts:
            b = e.lower(alpha) if (w >= 0) == low else e.upper(alpha)
            total += (w * (e.value - b)) ** 2
        return self.value - math.sqrt(total) if low else self.value + math.sqrt(total)

    def lower(self, alpha: float) -> float:
        return self._bound(alpha, True)

    def upper(self, alpha: float) -> float:
        return self._bound(alpha, False)
