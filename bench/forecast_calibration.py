"""The learning-curve forecast's error rates by seeded simulation with a known truth (issue 29).

Curves of several shapes (a power law, learning that starts late, one saturating near a perfect score,
no learning at all, and shapes the forecast's families do not contain), measured at 3 to 6 doubling
sizes on 50 to 400 items with 0/1 or fractional scores, with and without training-seed noise. For each
draw: does the 95% interval for a next run at 4x and 16x the largest size cover that run's true score;
how often does the forecast abstain; and how far is its point forecast from the truth, beside simply
repeating the last measured score.

usage: python bench/forecast_calibration.py [--draws 100]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

# ---------------------------------------------------------------- true curves


def logistic_in_log_n(n, lo, hi, slope, mid):
    return lo + (hi - lo) / (1 + np.exp(-slope * (np.log(n) - math.log(mid))))


SHAPES = {
    "power law": lambda n: 0.9 - 1.5 * np.asarray(n, float) ** -0.4,
    "late onset (logistic in log n, onset ~96)": lambda n: logistic_in_log_n(n, 0.03, 0.92, 3.0, 160),
    "late onset (hinge, not a family)": lambda n: 0.05 + 0.85 * (1 - np.exp(-np.maximum(np.asarray(n, float) - 60, 0) / 120)),
    "saturating near 1": lambda n: 1.0 - 2.0 * np.asarray(n, float) ** -0.8,
    "flat": lambda n: np.full(np.shape(n), 0.42),
    "log-linear, no plateau in view": lambda n: np.minimum(0.12 + 0.07 * np.log2(np.asarray(n, float) / 16), 0.97),
}
# families with 4 or more sizes past the onset in the grids below: abstention is held to 20% there
LATE = {"late onset (logistic in log n, onset ~96)", "late onset (hinge, not a family)"}

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(40)


@dataclass
class Setting:
    shape: str
    sizes: int
    items: int
    fractional: bool
    seed_sd: float  # training-seed noise: sd of a run's shift on the logit scale
    runs: int = 1
    first: int = 16

    @property
    def ns(self) -> np.ndarray:
        return self.first * 2.0 ** np.arange(self.sizes)


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _population_mean(logit: np.ndarray, fractional: bool) -> np.ndarray:
    """The mean over the item population of a run whose logit-scale level is `logit`."""
    if not fractional:
        return 1 / (1 + np.exp(-logit))
    z = logit[..., None] + 1.2 * _GH_X
    return (1 / (1 + np.exp(-z)) * _GH_W).sum(-1) / _GH_W.sum()


def _fractional_level(mu: np.ndarray) -> np.ndarray:
    """The logit level whose fractional population mean is mu (by bisection)."""
    lo, hi = np.full_like(mu, -12.0), np.full_like(mu, 12.0)
    for _ in range(50):
        mid = (lo + hi) / 2
        too_low = _population_mean(mid, True) < mu
        lo, hi = np.where(too_low, mid, lo), np.where(too_low, hi, mid)
    return (lo + hi) / 2


def draw(s: Setting, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[float, float]]:
    """Per-item scores of the measured sizes, and the true score of one new run at 4x and 16x the
    largest size. Items are solved monotonically in a run's level (0/1: item u_i is solved once the
    level passes it; fractional: an item's score rises with the level from its own difficulty)."""
    truth = SHAPES[s.shape]
    level = (lambda m: _fractional_level(np.atleast_1d(m))) if s.fractional else _logit
    u, z = rng.random(s.items), rng.normal(0, 1.2, s.items)
    rows = []
    for n in s.ns:
        for run in range(s.runs):
            lev = level(truth(n)) + rng.normal(0, s.seed_sd)
            lev = float(np.atleast_1d(lev)[0])
            scores = 1 / (1 + np.exp(-(lev + z))) if s.fractional else (u < 1 / (1 + np.exp(-lev))).astype(float)
            rows.append(pd.DataFrame({"n_samples": n, "run": str(run), "item_id": [f"i{i}" for i in range(s.items)], "score": scores}))
    far = {}
    for mult in (4, 16):
        n = s.ns[-1] * mult
        lev = np.atleast_1d(level(truth(n)))[0] + rng.normal(0, s.seed_sd)
        far[mult] = float(_population_mean(np.array(lev), s.fractional))
    return pd.concat(rows, ignore_index=True), far


def evaluate(s: Setting, draws: int, seed: int = 0, n_boot: int = 400) -> dict:
    """Coverage at 4x and 16x (of the draws that forecast), abstention share, median absolute errors."""
    from harness.forecast import Curve, forecast

    rng = np.random.default_rng(seed)
    covered = {4: 0, 16: 0}
    errors, baseline, abstained = {4: [], 16: []}, {4: [], 16: []}, 0
    for k in range(draws):
        frame, far = draw(s, rng)
        largest = float(s.ns[-1])
        f = forecast(Curve.from_items(frame), "sim.score", at=[int(4 * largest), int(16 * largest)], n_boot=n_boot, seed=k)
        last = f.points[-1]["mean"]
        if f.abstained:
            abstained += 1
            continue
        for row, mult in zip(f.at, (4, 16), strict=True):
            lo, hi = row["ci"]
            covered[mult] += lo <= far[mult] <= hi
            errors[mult].append(abs(row["estimate"] - far[mult]))
            baseline[mult].append(abs(last - far[mult]))
    made = draws - abstained
    return {"draws": draws, "abstained": abstained / draws, "made": made, "errors": errors[4] + errors[16],
            "baseline": baseline[4] + baseline[16],
            **{f"cover{m}": covered[m] / made if made else math.nan for m in (4, 16)},
            **{f"err{m}": float(np.median(errors[m])) if made else math.nan for m in (4, 16)},
            **{f"last{m}": float(np.median(baseline[m])) if made else math.nan for m in (4, 16)}}


def settings() -> list[Setting]:
    out = []
    for shape in SHAPES:
        for sizes in (3, 4, 5, 6):
            for items, fractional in ((50, False), (400, False), (200, True)):
                out.append(Setting(shape, sizes, items, fractional, seed_sd=0.0))
            out.append(Setting(shape, sizes, 200, False, seed_sd=0.15))
            out.append(Setting(shape, sizes, 200, False, seed_sd=0.15, runs=3))
    return out


def main() -> None:
    from common import write_table

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=100)
    p.add_argument("--shape", default=None, help="only this shape (a prefix)")
    a = p.parse_args()
    rows = []
    for k, s in enumerate(settings()):
        if a.shape and not s.shape.startswith(a.shape):
            continue
        r = evaluate(s, a.draws, seed=k)
        pct = lambda v: "-" if math.isnan(v) else f"{v:.0%}"  # noqa: E731
        num = lambda v: "-" if math.isnan(v) else f"{v:.3f}"  # noqa: E731
        rows.append([s.shape, f"{s.sizes} ({s.ns[0]:g}..{s.ns[-1]:g})", s.items, "fractional" if s.fractional else "0/1",
                     f"{s.seed_sd:g} x{s.runs}" if s.seed_sd else "none", pct(r["abstained"]), pct(r["cover4"]), pct(r["cover16"]),
                     f"{num(r['err4'])} / {num(r['last4'])}", f"{num(r['err16'])} / {num(r['last16'])}"])
        print(" | ".join(map(str, rows[-1])), flush=True)
    write_table("forecast_calibration", "Learning-curve forecast: 95% intervals for a next run at 4x and 16x the largest size",
                ["true curve", "sizes", "items", "scores", "seed noise (logit sd x runs)", "abstained", "covers at 4x", "covers at 16x",
                 "median abs error at 4x: forecast / last measured", "at 16x"], rows,
                [f"{a.draws} seeded draws per row; coverage over the draws that forecast (nominal 95%)",
                 "seed noise: each training run's level moves by N(0, sd) on the logit scale; the truth is a new run's score"])


if __name__ == "__main__":
    main()
