"""The forecast a user reads: the score a next training run at N samples will get, the plateau, and
the samples a target needs, each with a 95% interval, or an honest "cannot tell" with its reason and
the training size that would help most.

It abstains (estimates and intervals null, a reason) when
- there are fewer than 4 sizes: nothing would be left to check the fit out of sample;
- fewer than 3 sizes lie past the onset of learning (the onset: the last size before the first one
  that scores above the smallest by more than a standard error);
- every family, fitted without the largest size, misses that size beyond noise (its 95% predictive
  interval excludes what was measured): the data are of a shape none of them follows.
A plateau at the cap (a perfect score inside its interval) has no estimate, only its one-sided lower
bound; so has any score whose interval reaches 1. A target already reached at the smallest size reads
"at most N_min samples": the curve says nothing below its data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from harness.errors import UserError
from harness.forecast.curve import Curve
from harness.forecast.model import Z95, Ensemble, fit_ensemble, run_noise, weighted_quantile
from harness.store.documents import ForecastDoc

N_BOOT = 1000
MIN_SIZES = 4  # three to fit, the largest to check the fit out of sample
MIN_PAST_ONSET = 3
CAP = 1.0 - 1e-9
FAR = 100  # a samples-needed median beyond FAR x the largest size, unbounded above, is not reported
NO_LEARNING = "no size scores above the smallest beyond noise, and a later onset of learning cannot be ruled out"


@dataclass
class Forecast:
    metric: str
    points: list[dict]
    weights: dict[str, float]
    noise: dict
    plateau: dict
    at: list[dict]
    target: dict | None
    abstained: str | None = None  # the reason there is no forecast
    suggest: dict | None = None  # the training size that would help most, and why
    warnings: list[str] = field(default_factory=list)
    ensemble: Ensemble | None = field(default=None, repr=False)

    @property
    def model(self) -> str:
        """The family with the most weight ("none" where nothing was fitted)."""
        return max(self.weights, key=self.weights.get) if self.weights else "none"

    def document(self, **extra) -> ForecastDoc:
        """The typed document (`harness forecast --json`, best.json's forecast); `extra`: points_from, sentence."""
        return ForecastDoc(metric=self.metric, model=self.model, weights=self.weights, noise=self.noise, points=self.points,
                           plateau=self.plateau, at=self.at, target=self.target, abstained=self.abstained, suggest=self.suggest,
                           warnings=self.warnings, **extra)

    def band(self, ns: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fitted curve and the 95% band of a next run at `ns` (for plots); never for an abstention."""
        if self.abstained or self.ensemble is None:
            raise ValueError("an abstained forecast has no band")
        rng = np.random.default_rng(seed)
        out = np.array([[p, lo, max(hi, self.ensemble.continuation(n))] for n in ns
                        for p, s, m in [self.ensemble.next_run(n, rng)] for lo, hi in [weighted_quantile(s, m, [0.025, 0.975])]])
        return out[:, 0], out[:, 1], out[:, 2]

    def sentence(self, label: str | None = None) -> str:
        label = label or self.metric
        if self.abstained:
            tip = f" Most useful next: {self.suggest['why']}." if self.suggest else ""
            return f"{label}: no forecast: {self.abstained}.{tip}"
        parts = []
        if self.target is not None:
            parts.append(_target_text(self.target, label))
        for row in self.at:
            parts.append(f"a next run at {row['n']:,} samples: {_value_text(row)}")
        parts.append(f"plateau {_value_text(self.plateau)}")
        return f"{label}: " + "; ".join(parts) + "."


def _value_text(row: dict) -> str:
    if row["ci"] is None:
        return f"cannot tell ({row['reason']})"
    lo, hi = row["ci"]
    if row["estimate"] is None:
        return f"at least {lo:.3f} ({row['reason']})"
    if row.get("one_sided"):
        return f"{row['estimate']:.3f} (95% one-sided: at least {lo:.3f}; {row.get('why', 'the interval reaches a perfect score')})"
    return f"{row['estimate']:.3f} (95% CI {lo:.3f} to {hi:.3f})"


def _target_text(target: dict, label: str) -> str:
    n = target["n"]
    if target.get("reason"):
        return f"{label} {target['value']:g}: {target['reason']}"
    if n["estimate"] is None:
        return (f"{label} {target['value']:g} is not reached by the fitted curves "
                f"(reached in {target['p_reachable']:.0%} of the plausible ones)")
    hi = "unbounded" if n["ci"][1] is None else f"{n['ci'][1]:,.0f}"
    return f"about {n['estimate']:,.0f} samples (95% CI {n['ci'][0]:,.0f} to {hi}) to reach {label} {target['value']:g}"


def forecast(curve: Curve, metric: str, target: float | None = None, at: list[int] = (), n_boot: int = N_BOOT, seed: int = 0) -> Forecast:
    if len(curve.ns) < 2:
        raise UserError(f"{curve.source}: {metric} is measured at {len(curve.ns)} training size(s) "
                        f"({', '.join(f'{n:g}' for n in curve.ns)}); a learning curve needs at least 2, a forecast {MIN_SIZES}")
    if target is not None and not 0 <= target <= 1:
        raise UserError(f"--target {target}: must be within [0, 1] (a score's range)")
    rng = np.random.default_rng(seed)
    noise = run_noise(curve)
    # whether and where learning starts: judged on measured run noise only (lack of fit would count a
    # wrong family's misfit as noise, and hide the rise it misfits)
    onset, learning_seen = _onset(curve, noise[0] if noise[1] == "replicates" else 0.0)
    largest = curve.ns[-1]
    if len(curve.ns) < MIN_SIZES:
        ens = None
        abstained = (f"{len(curve.ns)} training sizes; a forecast needs {MIN_SIZES} (it fits the smaller ones and checks the fit "
                     "on the largest, out of sample)")
        suggest = {"n": int(2 * largest), "why": f"train at n={2 * largest:,.0f}, a size past the largest so far"}
    else:
        ens = fit_ensemble(curve, n_boot, rng, noise)
        abstained, suggest = _abstention(curve, ens, onset, learning_seen)
    run_var = noise[0]
    points = _points(curve, run_var)
    weights = {name: round(float(w), 4) for name, w in zip(ens.names, ens.weights, strict=True)} if ens else {}
    warnings = _warnings(curve, noise)
    noise = {"run_sd": math.sqrt(run_var), "source": noise[1]}
    reached = None if target is None else _reached_at_smallest(curve, run_var, target)
    if abstained:
        nothing = {"estimate": None, "ci": None, "reason": abstained}
        target_row = reached or (None if target is None else {"value": target, "n": {"estimate": None, "ci": None}, "p_reachable": None,
                                                                "reason": abstained})
        return Forecast(metric, points, weights, noise, dict(nothing), [{"n": int(n), **nothing} for n in at], target_row, abstained,
                        suggest, warnings, ens)
    at_rows = [{"n": int(n), **_interval_row(*ens.next_run(n, rng), upper=learning_seen, reach=ens.continuation(n))} for n in at]
    plateaus = [f.plateau() for f in ens.fits]
    pooled, mass = ens.samples(plateaus)
    plateau = _interval_row(ens.point(plateaus), pooled, mass, upper=learning_seen)
    if not learning_seen:  # the simplest curve the data allow is the point forecast; the bound stays the mixture's
        for row in at_rows:
            row["estimate"] = float(curve.means.mean())
        plateau = {"estimate": None, "ci": plateau["ci"], "one_sided": True, "reason": NO_LEARNING}
    elif ens.misfit > 0:
        plateau = {"estimate": None, "ci": None, "reason": "the curve families missed the largest size beyond noise when fitted "
                                                           "without it, so where they level off is not to be trusted"}
    elif ens.last_gain > 0:
        plateau = {"estimate": None, "ci": [plateau["ci"][0], 1.0], "one_sided": True,
                   "reason": "still rising beyond noise at the largest size: where it levels off is not in view"}
    elif plateau["one_sided"]:
        plateau = {"estimate": None, "ci": plateau["ci"], "one_sided": True,
                   "reason": "at the cap: a perfect score is within the plateau's interval"}
    target_row = reached or (None if target is None else _samples_needed(ens, target))
    if target_row and not learning_seen and not reached:
        target_row.update(n={"estimate": None, "ci": None}, p_reachable=None, reason=f"not reached over the sizes measured; {NO_LEARNING}")
    return Forecast(metric, points, weights, noise, plateau, at_rows, target_row, None, None, warnings, ens)


def _interval_row(estimate: float, pooled: np.ndarray, mass: np.ndarray, upper: bool = True, reach: float = 0.0) -> dict:
    """95% interval of a pooled sample, its upper end at least `reach`; one-sided (its lower bound)
    where the upper end is the cap or the data cannot bound it (`upper` false)."""
    lo, hi = (float(v) for v in weighted_quantile(pooled, mass, [0.025, 0.975]))
    hi = max(hi, reach)
    one_sided = hi >= CAP or not upper  # the cap is no bound of the data's: report what they bound, the lower end
    if one_sided:
        lo, hi = float(weighted_quantile(pooled, mass, 0.05)[0]), 1.0
    row = {"estimate": min(max(estimate, lo), hi), "ci": [lo, hi], "one_sided": one_sided}  # the fit, inside its interval
    return {**row, "why": NO_LEARNING} if not upper else row


def _reached_at_smallest(curve: Curve, run_var: float, target: float) -> dict | None:
    """The target's row where the smallest size already reaches it beyond noise: the curve says
    nothing below its data, so the answer is an upper bound."""
    n_min = float(curve.ns[0])
    if curve.means[0] - Z95 * math.sqrt(curve.item_variance()[0] + run_var / curve.runs[0]) < target:
        return None
    return {"value": target, "n": {"estimate": None, "ci": [None, n_min]}, "p_reachable": 1.0,
            "reason": f"already reached at the smallest size measured: at most {n_min:,.0f} samples"}


def _samples_needed(ens: Ensemble, target: float) -> dict:
    pooled, mass = ens.samples(ens.samples_for(target))
    lo, mid, hi = weighted_quantile(pooled, mass, [0.025, 0.5, 0.975])
    finite = lambda v: float(v) if math.isfinite(v) else None  # noqa: E731
    row = {"value": target, "n": {"estimate": finite(mid), "ci": [finite(lo), finite(hi)]},
           "p_reachable": float(mass[np.isfinite(pooled)].sum() / mass.sum()), "reason": None}
    far = FAR * ens.curve.ns[-1]
    if row["n"]["estimate"] is not None and row["n"]["estimate"] > far and row["n"]["ci"][1] is None:
        # a median that far out with no upper bound is the curve barely rising, not a number to plan on
        row["n"]["estimate"] = None
        row["reason"] = (f"not within {FAR}x the largest size in half of the plausible curves and unbounded above: "
                         f"at least {row['n']['ci'][0]:,.0f} samples")
    return row


def _points(curve: Curve, run_var: float) -> list[dict]:
    se = np.sqrt(curve.item_variance() + run_var / curve.runs)
    return [{"n": int(n), "mean": float(m), "ci": [float(max(m - Z95 * s, 0.0)), float(min(m + Z95 * s, 1.0))],
             "n_items": curve.items.shape[1], "runs": int(r)} for n, m, s, r in zip(curve.ns, curve.means, se, curve.runs, strict=True)]


def _onset(curve: Curve, run_var: float) -> tuple[int, bool]:
    """(index of the onset of learning, whether any size scores above the smallest beyond noise).

    The onset is the last size before the first that rises above the smallest by more than one
    standard error: a lenient test, so that a slow rise is not taken for a pre-learning phase; that
    learning happened at all needs the usual 95% one."""
    rises = [curve.paired_rise(k, 0, run_var) for k in range(1, len(curve.ns))]
    onset = next((k for k, (rise, se) in enumerate(rises) if rise > max(se, 0.0)), len(curve.ns) - 1)
    return onset, any(rise > Z95 * se and rise > 0 for rise, se in rises)


def _abstention(curve: Curve, ens: Ensemble, onset: int, learning_seen: bool) -> tuple[str | None, dict | None]:
    ns, largest = curve.ns, curve.ns[-1]
    past = len(ns) - 1 - onset
    if learning_seen and past < MIN_PAST_ONSET:
        sizes = ", ".join(f"{n:g}" for n in ns[onset + 1:])
        return (f"only {past} size(s) past the onset of learning ({sizes}); a forecast needs {MIN_PAST_ONSET}",
                {"n": int(2 * largest), "why": f"train at n={2 * largest:,.0f}, a size past the onset where the curve's shape shows"})
    if ens.held_out:
        last = ens.held_out[-1]
        if all(abs(last["measured"] - m) > Z95 * s for m, s in zip(last["mean"], last["sd"], strict=True)):
            best = int(np.argmin([abs(last["measured"] - m) / s for m, s in zip(last["mean"], last["sd"], strict=True)]))
            return (f"no curve family fitted on n < {last['n']:g} predicts the measured {last['measured']:.3f} at n={last['n']:g} "
                    f"(closest: {ens.names[best]}, {last['mean'][best]:.3f} ± {Z95 * last['sd'][best]:.3f})",
                    {"n": int(2 * largest), "why": f"train at n={2 * largest:,.0f} to see where the curve goes past n={largest:g}"})
    return None, None


def _warnings(curve: Curve, noise: tuple[float, str]) -> list[str]:
    out = []
    for k in range(len(curve.ns) - 1):
        rise, se = curve.paired_rise(k + 1, k, noise[0] if noise[1] == "replicates" else 0.0)
        if rise < -Z95 * se and rise < 0:
            out.append(f"not monotone: the score drops from n={curve.ns[k]:g} ({curve.means[k]:.3f}) to n={curve.ns[k + 1]:g} "
                       f"({curve.means[k + 1]:.3f}), beyond noise")
    if noise[1] == "unmeasured":
        out.append("run-to-run noise unmeasured (one run per size and too few sizes to see it in the fit): the intervals cover "
                   "which items were drawn, not the training seed; add replicates or sizes")
    return out
