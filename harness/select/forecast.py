"""Learning-curve forecasts: how a metric grows with the number of training samples, and how many
samples a target needs.

The model is a saturating power law, fitted on the error scale: score(n) = a - b * n^(-c) ("pow3";
a is the plateau, b >= 0, c > 0, a <= 1), or with an offset, score(n) = a - b * (n + d)^(-c) ("pow4"),
once there are at least POW4_MIN_POINTS sizes. For each exponent c on a fine grid (and each offset d)
the other parameters are a closed-form least-squares fit, so thousands of bootstrap refits are a few
matrix products. Uncertainty comes from a bootstrap over ITEMS, resampled jointly across every n (the
same items are scored at each n, so their difficulty is shared), and over repeated runs at one n
(seeds) where there are several. Intervals are 95% percentile intervals; a target the plateau's
bootstrap distribution does not reach gets an unbounded upper end (null) and a probability of being
reachable at all. Extrapolation is a model's guess: the intervals say how far the data constrain it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.errors import UserError

N_BOOT = 1000
POW4_MIN_POINTS = 6
C_GRID = np.geomspace(0.02, 3.0, 240)


@dataclass
class Curve:
    """The data of one learning curve: per n, runs x items score matrices over the same items."""

    ns: np.ndarray  # distinct sample counts, ascending
    runs: list[np.ndarray]  # per n: (runs, items) scores
    item_ids: list[str]

    @classmethod
    def from_items(cls, frame: pd.DataFrame) -> Curve:
        """`frame`: columns n_samples, item_id, score, and optionally run (a seed or trial) per n."""
        if frame.empty:
            raise UserError("forecast: no items to fit")
        frame = frame.assign(run=frame["run"] if "run" in frame else 0)
        shared = set.intersection(*(set(g.item_id) for _, g in frame.groupby("n_samples")))
        if not shared:
            raise UserError("forecast: no item is scored at every n_samples (a curve needs the same items at each size)")
        items = sorted(shared)
        frame = frame[frame.item_id.isin(shared)]
        ns, runs = [], []
        for n, group in frame.groupby("n_samples"):
            wide = group.pivot_table(index="run", columns="item_id", values="score", aggfunc="mean").reindex(columns=items)
            ns.append(float(n))
            runs.append(wide.to_numpy(dtype=float))
        return cls(np.array(ns), runs, items)

    def resampled_means(self, n_boot: int, seed: int) -> np.ndarray:
        """(1 + n_boot, points): row 0 the observed point means, then bootstrap replicates."""
        rng = np.random.default_rng(seed)
        items = len(self.item_ids)
        pick = rng.integers(0, items, (n_boot, items))
        out = np.empty((1 + n_boot, len(self.ns)))
        for k, scores in enumerate(self.runs):
            out[0, k] = scores.mean()
            chosen = scores[rng.integers(0, len(scores), (n_boot, len(scores)))].mean(axis=1)  # runs (seeds) resampled
            out[1:, k] = np.take_along_axis(chosen, pick, axis=1).mean(axis=1)
        return out


@dataclass
class Fit:
    model: str
    a: np.ndarray  # per replicate (row 0: the observed data)
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray

    def predict(self, n: float) -> np.ndarray:
        return self.a - self.b * (n + self.d) ** (-self.c)

    def samples_for(self, target: float) -> np.ndarray:
        """n reaching `target` per replicate; inf where the plateau stays at or below it."""
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = self.a - target
            n = np.where((gap > 0) & (self.b > 0), (self.b / gap) ** (1.0 / self.c) - self.d, np.inf)
        return np.where(self.predict(1.0) >= target, 1.0, np.maximum(n, 1.0))


def fit(ns: np.ndarray, means: np.ndarray, model: str | None = None) -> Fit:
    """Least-squares fits of every row of `means` (replicates x points) at sizes `ns`."""
    model = model or ("pow4" if len(ns) >= POW4_MIN_POINTS else "pow3")
    offsets = np.array([0.0]) if model == "pow3" else np.concatenate([[0.0], ns.min() * np.geomspace(0.125, 8, 13)])
    best_sse = np.full(len(means), np.inf)
    out = {k: np.zeros(len(means)) for k in "abcd"}
    for d in offsets:
        for c in C_GRID:
            a, b, sse = _linear_fit((ns + d) ** (-c), means)
            better = sse < best_sse - 1e-15
            best_sse = np.where(better, sse, best_sse)
            for key, value in (("a", a), ("b", b), ("c", c), ("d", d)):
                out[key] = np.where(better, value, out[key])
    return Fit(model, out["a"], out["b"], out["c"], out["d"])


def _linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y ~ a - b x for every row of y, with b >= 0 and a <= 1 (a score's plateau)."""
    xm, ym = x.mean(), y.mean(axis=1)
    sxx = ((x - xm) ** 2).sum()
    b = -((x - xm) * (y - ym[:, None])).sum(axis=1) / sxx
    a = ym + b * xm
    flat = b < 0  # a decreasing curve: the best non-decreasing one is flat
    a, b = np.where(flat, ym, a), np.where(flat, 0.0, b)
    capped = a > 1  # plateau above a perfect score: fix it at 1 and refit b
    b = np.where(capped, np.maximum(0.0, (x * (1 - y)).sum(axis=1) / (x * x).sum()), b)
    a = np.where(capped, 1.0, a)
    sse = ((y - (a[:, None] - b[:, None] * x)) ** 2).sum(axis=1)
    return a, b, sse


def _interval(values: np.ndarray) -> list[float | None]:
    """95% percentile interval of bootstrap replicates; an infinite end is None (unbounded)."""
    ordered = np.sort(values)
    lo, hi = ordered[int(0.025 * (len(ordered) - 1))], ordered[math.ceil(0.975 * (len(ordered) - 1))]
    return [float(lo) if math.isfinite(lo) else None, float(hi) if math.isfinite(hi) else None]


@dataclass
class Forecast:
    metric: str
    model: str
    points: list[dict]
    plateau: dict
    at: list[dict]
    target: dict | None
    warnings: list[str] = field(default_factory=list)
    fit: Fit | None = field(default=None, repr=False)

    def as_json(self) -> dict:
        return {"metric": self.metric, "model": self.model, "points": self.points, "plateau": self.plateau, "at": self.at,
                "target": self.target, "warnings": self.warnings}

    def curve(self, ns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The fitted curve and its 95% band at `ns` (for plots)."""
        preds = np.stack([self.fit.predict(n) for n in ns], axis=1)
        return preds[0], np.quantile(preds[1:], 0.025, axis=0), np.quantile(preds[1:], 0.975, axis=0)

    def sentence(self, metric_label: str | None = None) -> str:
        label = metric_label or self.metric
        parts = []
        if self.target is not None:
            n = self.target["n"]
            if n["estimate"] is None:
                parts.append(f"{label} {self.target['value']:g} is not reached by the fitted curve "
                             f"(reachable in {self.target['p_reachable']:.0%} of bootstrap fits)")
            else:
                hi = "unbounded" if n["ci"][1] is None else f"{n['ci'][1]:,.0f}"
                parts.append(f"about {n['estimate']:,.0f} samples (95% CI {n['ci'][0]:,.0f} to {hi}) to reach {label} "
                             f"{self.target['value']:g}")
        lo, hi = self.plateau["ci"]
        parts.append(f"plateau {self.plateau['estimate']:.3f} (95% CI {lo:.3f} to {hi:.3f})")
        return "; ".join(parts) + "."


def forecast(curve: Curve, metric: str, target: float | None = None, at: list[int] = (), n_boot: int = N_BOOT, seed: int = 0) -> Forecast:
    if len(curve.ns) < 3:
        raise UserError(f"forecast {metric}: {len(curve.ns)} distinct n_samples ({', '.join(f'{n:g}' for n in curve.ns)}); "
                        "a learning curve needs at least 3")
    if target is not None and not 0 <= target <= 1:
        raise UserError(f"--target {target}: must be within [0, 1] (a score's range)")
    means = curve.resampled_means(n_boot, seed)
    fitted = fit(curve.ns, means)
    points = [{"n": int(n), "mean": float(means[0, k]), "ci": _interval(means[1:, k]), "n_items": len(curve.item_ids)}
              for k, n in enumerate(curve.ns)]
    plateau = {"estimate": float(fitted.a[0]), "ci": _interval(fitted.a[1:])}
    at_rows = [{"n": int(n), "estimate": float(fitted.predict(n)[0]), "ci": _interval(fitted.predict(n)[1:])} for n in at]
    target_row = None
    if target is not None:
        needed = fitted.samples_for(target)
        target_row = {"value": target,
                      "n": {"estimate": float(needed[0]) if math.isfinite(needed[0]) else None, "ci": _interval(needed[1:])},
                      "p_reachable": float(np.isfinite(needed[1:]).mean())}
    return Forecast(metric, fitted.model, points, plateau, at_rows, target_row, _not_monotone(curve) + _s_shaped(curve), fitted)


def _s_shaped(curve: Curve) -> list[str]:
    """Where the score rises faster (per doubling of n) than it did before, beyond noise: a power law
    assumes diminishing returns, so after a late onset of learning it underestimates larger sizes."""
    t = np.log(curve.ns)
    slopes, errors = [], []
    for k in range(len(curve.ns) - 1):
        diff = curve.runs[k + 1].mean(axis=0) - curve.runs[k].mean(axis=0)
        se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
        slopes.append(diff.mean() / (t[k + 1] - t[k]))
        errors.append(se / (t[k + 1] - t[k]))
    warnings = []
    for k in range(len(slopes) - 1):
        if slopes[k + 1] - slopes[k] > 2 * math.hypot(errors[k], errors[k + 1]):
            n0, n1, n2 = (f"{n:g}" for n in curve.ns[k:k + 3])
            warnings.append(f"S-shaped: the score rises faster from n={n1} to n={n2} than from n={n0} to n={n1}; a power law "
                            f"assumes diminishing returns and likely underestimates larger sizes (learning starts late: "
                            f"add sizes past n={n1} and judge the fit on those)")
    return warnings


def _not_monotone(curve: Curve) -> list[str]:
    """Consecutive points where the score drops by more than twice the paired standard error."""
    warnings = []
    for k in range(len(curve.ns) - 1):
        diff = curve.runs[k + 1].mean(axis=0) - curve.runs[k].mean(axis=0)
        se = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else 0.0
        if diff.mean() < -2 * se and diff.mean() < 0:
            warnings.append(f"not monotone: the score drops from n={curve.ns[k]:g} ({curve.runs[k].mean():.3f}) to "
                            f"n={curve.ns[k + 1]:g} ({curve.runs[k + 1].mean():.3f}), beyond noise; the fit assumes growth")
    return warnings


# ---------------------------------------------------------------- where the items come from


def read_items_file(path) -> pd.DataFrame:
    """--items: CSV or Parquet with columns n_samples, item_id, score (optional group, run)."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--items {path}: no such file")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as err:  # noqa: BLE001 - pandas/pyarrow raise many kinds for a damaged file
        raise UserError(f"--items {path}: not a readable {'Parquet' if path.suffix == '.parquet' else 'CSV'} file "
                        f"({type(err).__name__}: {str(err)[:120]})") from None
    if missing := [c for c in ("n_samples", "item_id", "score") if c not in frame.columns]:
        raise UserError(f"--items {path}: columns {', '.join(missing)} missing (need n_samples, item_id, score; optional group)")
    try:
        frame = frame.assign(n_samples=frame.n_samples.astype(float), score=frame.score.astype(float), item_id=frame.item_id.astype(str))
    except (TypeError, ValueError) as err:
        raise UserError(f"--items {path}: n_samples and score must be numbers ({err})") from None
    if (frame.n_samples <= 0).any() or frame.score.isna().any():
        raise UserError(f"--items {path}: n_samples must be positive and every score a number")
    return frame


def study_items(data, metric: str, group: str | None = None) -> pd.DataFrame:
    """A study's per-item values of SUITE.METRIC against n_samples (the base model aside).

    Default: the best configuration at each n (highest mean of the metric). `group` "PARAM=VALUE"
    keeps the trials whose PARAM is VALUE instead; several at one n are repeated runs (seeds)."""
    suite, _, name = metric.rpartition(".")
    trials = data.trials[~data.trials.is_base]
    if "n_samples" not in trials:
        raise UserError(f"study {data.name}: its trials have no n_samples; nothing to forecast against")
    if group:
        param, sep, value = group.partition("=")
        if not sep or param not in trials:
            raise UserError(f"--group {group}: expected PARAM=VALUE with PARAM one of {', '.join(data.params)}")
        trials = trials[trials[param].astype(str) == value]
        if trials.empty:
            raise UserError(f"--group {group}: no complete trial has {param}={value}")
    long = data.metrics[data.metrics.candidate.isin(trials.candidate)]
    long = long[(long.suite == suite) & (long.metric == name)]
    if long.empty:
        known = sorted({f"{s}.{m}" for s, m in data.metrics[["suite", "metric"]].drop_duplicates().itertuples(index=False)})
        raise UserError(f"--metric {metric}: no such metric in study {data.name} (it has: {', '.join(known)})")
    n_of = dict(zip(trials.candidate, trials.n_samples, strict=True))
    long = long.assign(n_samples=long.candidate.map(n_of).astype(float), score=long.value.astype(float), run=long.candidate)
    if not group:
        means = long.groupby(["n_samples", "candidate"])["score"].mean().reset_index()
        best = means.sort_values("score").groupby("n_samples").tail(1).candidate
        long = long[long.candidate.isin(best)]
    return long[["n_samples", "item_id", "score", "run"]]
