"""The fitted learning curve: every family fitted to the observed points and to bootstrap replicates,
weighted by how well each predicted sizes it was not fitted on, with the run-to-run noise a user's
next training run adds.

- Replicates: items resampled jointly across sizes, plus each point's run-to-run noise drawn afresh.
- Run-to-run noise: from repeated runs at one size where the curve has them; otherwise from the
  curve's lack of fit (the spread of the points about the most flexible family that has a residual
  degree of freedom, beyond what the items explain); without either it is unmeasured.
- Family weights (4 or more sizes): each family fitted without the largest size (and without the two
  largest, where 3 sizes remain) predicts them; its weight is its predictive density there: the
  out-of-sample fit, not the in-sample one.
- Misfit: where the weighted families missed the largest size beyond their predictive spread, the
  excess per unit of log n is carried beyond the largest size as a random slope per replicate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.forecast.curve import Curve
from harness.forecast.families import Family, Fitted, families

Z95 = 1.959963984540054
HELD_OUT_REPLICATES = 300
N_MAX = 1e8  # "samples needed" beyond this reads as not reached


@dataclass
class Ensemble:
    curve: Curve
    fits: list[Fitted]  # per family: row 0 the observed points, then the bootstrap replicates
    weights: np.ndarray  # per family, summing to 1
    run_var: float  # variance of one new run's mean about the curve
    held_out: list[dict]  # per held-out size: each family's predictive mean and sd, and the measured mean
    misfit: float  # sd of the held-out misses beyond noise, per unit of log n extrapolated (0: none seen)
    misfit_z: np.ndarray  # per replicate: its draw of that extra slope (in sds)
    last_gain: float  # the rise per unit of log n over the last step, where shown beyond noise (else 0)

    @property
    def names(self) -> list[str]:
        return [f.family.name for f in self.fits]

    def samples(self, values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Pool per-family replicate values (rows 1..) into one weighted sample."""
        reps = len(values[0]) - 1
        pooled = np.concatenate([v[1:] for v in values])
        mass = np.concatenate([np.full(reps, w / reps) for w in self.weights])
        return pooled, mass

    def predict(self, t: np.ndarray) -> list[np.ndarray]:
        """Per family: (replicates, len(t)) curves, each replicate bent by its draw of the misfit slope
        beyond the largest size (so a family that missed held-out sizes is not trusted further out)."""
        beyond = np.maximum(np.atleast_1d(t) - self.curve.t[-1], 0.0)
        bend = self.misfit * np.concatenate([[0.0], self.misfit_z])[:, None] * beyond[None, :]
        return [np.clip(f.predict(t) + bend, 0.0, 1.0) for f in self.fits]

    def samples_for(self, target: float) -> list[np.ndarray]:
        """Per family and replicate: the first size (from the smallest measured, on a fine log grid) whose
        curve reaches `target`; inf where none does by N_MAX."""
        grid = np.geomspace(float(self.curve.ns[0]), N_MAX, 400)
        out = []
        for pred in self.predict(np.log(grid)):
            reached = pred >= target
            out.append(np.where(reached.any(axis=1), grid[np.argmax(reached, axis=1)], np.inf))
        return out

    def point(self, values: list[np.ndarray]) -> float:
        """The point forecast: the families' fits to the observed points (row 0), weighted."""
        return float(sum(w * v[0] for w, v in zip(self.weights, values, strict=True)))

    def continuation(self, n: float) -> float:
        """The last measured score continued at the last step's rise (per unit of log n): no family may
        claim, beyond the data, a turn into a plateau sharper than the data show."""
        return float(min(1.0, self.curve.means[-1] + self.last_gain * max(math.log(n) - self.curve.t[-1], 0.0)))

    def next_run(self, n: float, rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray]:
        """The score of a new training run at n: point estimate, pooled sample and its weights."""
        values = [v[:, 0] for v in self.predict(np.array([math.log(n)]))]
        pooled, mass = self.samples(values)
        if self.run_var > 0:
            pooled = np.clip(pooled + rng.normal(0.0, math.sqrt(self.run_var), len(pooled)), 0.0, 1.0)
        return self.point(values), pooled, mass


def weighted_quantile(values: np.ndarray, mass: np.ndarray, q: float | np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(mass[order])
    cum /= cum[-1]
    idx = np.minimum(np.searchsorted(cum, np.atleast_1d(q), side="left"), len(values) - 1)
    return values[order][idx]


def fit_ensemble(curve: Curve, n_boot: int, rng: np.random.Generator, noise: tuple[float, str]) -> Ensemble:
    """A curve of 4 or more sizes; `noise`: the run-to-run variance of one run's mean and its source
    (`run_noise`)."""
    run_var, source = noise
    resampled = curve.resampled_means(n_boot, rng)
    draws = rng.normal(0.0, 1.0, (n_boot, len(curve.ns)))  # each point's run-to-run noise, in sds
    y, w = _replicates(curve, resampled, draws, run_var)
    fams = families(curve.t)
    fits = [fam.fit(curve.t, y, w, rng) for fam in fams]
    held_out = _held_out(curve, fams, resampled[:HELD_OUT_REPLICATES], draws[:HELD_OUT_REPLICATES])
    log_density = np.sum([[_log_normal(h["measured"], m, s) for m, s in zip(h["mean"], h["sd"], strict=True)] for h in held_out], axis=0)
    weights = np.exp(log_density - log_density.max())
    weights /= weights.sum()
    measured_var = run_var if source == "replicates" else 0.0
    rise, se = curve.paired_rise(len(curve.ns) - 1, len(curve.ns) - 2, measured_var)
    last_gain = rise / (curve.t[-1] - curve.t[-2]) if rise > Z95 * se and rise > 0 else 0.0
    return Ensemble(curve, fits, weights, run_var, held_out, _misfit_slope(curve, held_out, weights), rng.normal(0, 1, n_boot),
                    last_gain)


def _replicates(curve: Curve, resampled: np.ndarray, draws: np.ndarray, run_var: float) -> tuple[np.ndarray, np.ndarray]:
    """(the observed point means then their replicates, each point's weight) with run noise run_var."""
    point_var = curve.item_variance() + run_var / curve.runs
    y = np.vstack([curve.means, resampled + draws * np.sqrt(run_var / curve.runs)])
    return y, 1.0 / point_var


def _misfit_slope(curve: Curve, held_out: list[dict], weights: np.ndarray) -> float:
    """How far the weighted families missed the held-out sizes beyond their predictive spread, per
    unit of log n they extrapolated there (the misspecification the bootstrap cannot see)."""
    if not held_out:
        return 0.0
    h = held_out[-1]  # the largest size: an earlier one may predate the shape the data now show
    mean, sd = np.array(h["mean"]), np.array(h["sd"])
    mix = float(weights @ mean)
    var = float(weights @ (sd**2 + (mean - mix) ** 2))
    step = curve.t[-1] - curve.t[-2]
    return math.sqrt(max(0.0, (h["measured"] - mix) ** 2 - var)) / step


def _log_normal(x: float, mean: float, sd: float) -> float:
    return -0.5 * ((x - mean) / sd) ** 2 - math.log(sd)


def _held_out(curve: Curve, fams: list[Family], resampled: np.ndarray, draws: np.ndarray) -> list[dict]:
    """For the last one or two sizes (where 3 or more remain before them): each family fitted on the
    sizes before, its predictive mean and sd there (the fit's spread plus the point's own noise). The
    run-to-run noise is judged on the sizes before too: a misfit at the held-out size is what is
    being tested, not noise to allow for."""
    out = []
    for h in range(max(3, len(curve.ns) - 2), len(curve.ns)):
        before = curve.first(h)
        run_var = run_noise(before)[0]
        y, w = _replicates(before, resampled[:, :h], draws[:, :h], run_var)
        noise = curve.item_variance()[h] + run_var / curve.runs[h]
        means, sds = [], []
        for fam in fams:
            # best fits only: a family is weighed by how its best fits predicted, not by how widely it can bend
            pred = fam.fit(before.t, y, w).predict(curve.t[h:h + 1])[1:, 0]
            means.append(float(pred.mean()))
            sds.append(math.sqrt(float(pred.var()) + noise))
        out.append({"n": float(curve.ns[h]), "measured": float(curve.means[h]), "mean": means, "sd": sds})
    return out


def run_noise(curve: Curve) -> tuple[float, str]:
    """The variance of one training run's mean about the curve, and its source: the repeated runs at
    one size where there are any, else the curve's lack of fit, else unmeasured (0).

    Lack of fit is the extra variance that makes the weighted residuals as large as their degrees of
    freedom, about a curve that could have made the points: the least of those of the families with a
    residual degree of freedom and of the monotone (isotonic) fit. A family of the wrong shape (a power
    law through an S-shaped rise) has large residuals that are not noise; the least is the one least
    inflated by a wrong shape."""
    seed = curve.seed_variance()
    if seed is not None:
        return seed[0], "replicates"
    item_var = curve.item_variance()
    y = curve.means[None, :]
    fits = [(y - fam.fit(curve.t, y, 1.0 / item_var).predict(curve.t))[0] for fam in families(curve.t)
            if fam.name != "flat" and len(curve.ns) - fam.n_params >= 1]
    dofs = [len(curve.ns) - fam.n_params for fam in families(curve.t) if fam.name != "flat" and len(curve.ns) - fam.n_params >= 1]
    monotone, blocks = _isotonic(curve.means, 1.0 / item_var)
    if len(curve.ns) - blocks >= 1:
        fits.append(curve.means - monotone)
        dofs.append(len(curve.ns) - blocks)
    if not fits:
        return 0.0, "unmeasured"
    return min(_excess_variance(residual, item_var, dof) for residual, dof in zip(fits, dofs, strict=True)), "lack of fit"


def _excess_variance(residual: np.ndarray, item_var: np.ndarray, dof: int) -> float:
    """The extra variance s2 at which sum(residual^2 / (item_var + s2)) equals dof (0 if it already does)."""
    def chi2(s2: float) -> float:
        return float((residual**2 / (item_var + s2)).sum())

    if chi2(0.0) <= dof:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if chi2(mid) > dof else (lo, mid)
    return hi


def _isotonic(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, int]:
    """The weighted non-decreasing fit to y (pool adjacent violators) and its number of blocks."""
    blocks = [[float(v), float(x), 1] for v, x in zip(y, w, strict=True)]  # [mean, weight, count]
    merged: list[list] = []
    for block in blocks:
        merged.append(block)
        while len(merged) > 1 and merged[-2][0] > merged[-1][0]:
            (m1, w1, c1), (m2, w2, c2) = merged[-2], merged.pop()
            merged[-1] = [(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2]
    return np.repeat([m for m, _, _ in merged], [c for _, _, c in merged]), len(merged)
