"""Choosing the next training size (`n_samples: {adaptive: ...}` in a sweep file).

The first four sizes are a cheap ladder: min, 2x, 4x and 8x min. After each, the forecast is made
again, and the sweep
- stops once the question is answered: the samples the target needs are known within `ratio` (hi/lo
  of the 95% interval), the target is already reached at the smallest size or shown out of reach;
  without a target, the 95% interval of a next run's score at `max` is narrower than `width`;
- trains at the size the forecast names when it abstains (a size past the largest, within max);
- otherwise trains at the candidate size (1.5x to 8x the largest, max, the geometric middle of each
  gap between trained sizes, and the current estimate of the samples needed; none within 10% of a
  trained size) whose score would most narrow the forecast for its cost.

"Most narrow" is the expected reduction of the forecast's variance (of log samples-needed, or of the
score at max) from observing a next run's score at that size, estimated over the forecast's own
replicates (linear Bayes: Cov(Q, y)^2 / Var(y), y with its measurement noise); a training's cost is
taken as its number of samples plus a fixed 8x min for what every trial pays (loading, scoring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.config import AdaptiveSizes
from harness.forecast.curve import Curve
from harness.forecast.forecast import Forecast, forecast
from harness.forecast.model import N_MAX

LADDER = (1, 2, 4, 8)  # the first sizes, as multiples of min
STEPS = (1.5, 2, 3, 4, 8)  # candidate next sizes, as multiples of the largest so far
OVERHEAD = 8  # a training's fixed cost (loading, scoring) in samples, as a multiple of min (W7: ~50 s of a 16-row trial's 60)


@dataclass
class Step:
    n: int | None  # the next size; None: stop
    why: str


def next_size(curve: Curve | None, spec: AdaptiveSizes, metric: str, n_boot: int = 400, seed: int = 0) -> Step:
    done = [] if curve is None else [int(n) for n in curve.ns]
    for k in LADDER:
        if spec.min * k not in done:
            return Step(spec.min * k, f"the starting ladder (min x {', '.join(map(str, LADDER))})")
    largest = done[-1]
    target = spec.goal[1] if spec.target else None
    f = forecast(curve, metric, target, at=[spec.max], n_boot=n_boot, seed=seed)
    if f.abstained:
        n = min(f.suggest["n"], spec.max)
        if n <= largest:
            return Step(None, f"stopped: no forecast ({f.abstained}) and max {spec.max} is trained")
        return Step(n, f"no forecast yet ({f.abstained}): {f.suggest['why']}")
    if answer := answered(f, spec):
        return Step(None, f"stopped: {answer}")
    candidates = {int(round(largest * m)) for m in STEPS} | {spec.max}
    candidates |= {int(round(math.sqrt(a * b))) for a, b in zip(done, done[1:], strict=False) if b > 1.3 * a}  # gaps between sizes
    if target is not None and f.target["n"]["estimate"] is not None:
        candidates.add(int(round(f.target["n"]["estimate"])))
    candidates = sorted(c for c in candidates if spec.min <= c <= spec.max and all(abs(math.log(c / n)) > 0.1 for n in done))
    if not candidates:
        return Step(None, f"stopped: no size within max {spec.max} is left to train and the forecast is still {_state(f, spec)}")
    gains = [_narrowing(f, c, spec) / (c + OVERHEAD * spec.min) for c in candidates]
    best = candidates[int(np.argmax(gains))]
    return Step(best, f"narrows the forecast most for its cost (it is {_state(f, spec)})")


def answered(f: Forecast, spec: AdaptiveSizes) -> str | None:
    """Why the forecast answers the sweep's question, or None."""
    if spec.target is not None:
        row = f.target
        lo, hi = row["n"]["ci"] or (None, None)
        if row.get("reason", "") and "at most" in row["reason"]:
            return row["reason"]
        if row["p_reachable"] is not None and row["p_reachable"] < 0.025:
            return f"{spec.target} is out of reach: the fitted curves level off below it"
        if lo and hi and hi / lo <= spec.ratio:
            return f"the samples {spec.target} needs are known within x{spec.ratio:g} ({lo:,.0f} to {hi:,.0f})"
        return None
    lo, hi = f.at[0]["ci"]
    if hi - lo <= spec.width:
        return f"a next run's score at {spec.max:,} is known within {spec.width:g} ({lo:.3f} to {hi:.3f})"
    return None


def _state(f: Forecast, spec: AdaptiveSizes) -> str:
    if spec.target is not None:
        lo, hi = f.target["n"]["ci"] or (None, None)
        return f"{spec.target} at {lo or 0:,.0f} to {'unbounded' if hi is None else f'{hi:,.0f}'} samples"
    lo, hi = f.at[0]["ci"]
    return f"{lo:.3f} to {hi:.3f} at {spec.max:,}"


def _narrowing(f: Forecast, n: int, spec: AdaptiveSizes) -> float:
    """Expected reduction of the variance of the forecast's quantity from a next run's score at n."""
    ens = f.ensemble
    at_n = ens.samples([v[:, 0] for v in ens.predict(np.array([math.log(n)]))])[0]
    if spec.target is not None:
        q, mass = ens.samples(ens.samples_for(spec.goal[1]))
        q = np.log(np.minimum(q, N_MAX))
    else:
        q, mass = ens.samples([v[:, 0] for v in ens.predict(np.array([math.log(spec.max)]))])
    noise = float(ens.curve.item_variance()[-1]) + ens.run_var
    mass = mass / mass.sum()
    cov = float(mass @ ((q - mass @ q) * (at_n - mass @ at_n)))
    var_y = float(mass @ (at_n - mass @ at_n) ** 2) + noise
    return cov * cov / var_y
