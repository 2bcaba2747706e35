"""Decision quality of the pick, the gate and early stopping, by seeded simulation with a known truth
(issue 28), and the coverage of the intervals they rest on. No model: per-item results are drawn.

Shapes the rules do not assume are drawn on purpose: items correlated between candidates (a shared
item difficulty, `rho`) or not, continuous scores skewed toward 1, suites of different sizes, few
items, means near 0 or 1. Every figure is a share of seeded draws; tests/fast/test_decisions.py runs
the same functions at fewer draws against the acceptance thresholds.
usage: python bench/decisions.py [--draws 400]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ITEMS = (20, 50, 200, 1000)


# ---------------------------------------------------------------- drawing per-item results


def correlated_binary(rng, ps: dict[str, float], n: int, rho: float) -> dict[str, np.ndarray]:
    """0/1 results with marginal p per candidate; a latent item difficulty shared with weight rho."""
    g = rng.standard_normal(n)
    return {c: (math.sqrt(rho) * g + math.sqrt(1 - rho) * rng.standard_normal(n) < NormalDist().inv_cdf(p)).astype(float)
            for c, p in ps.items()}


def skewed_scores(rng, means: dict[str, float], n: int, rho: float) -> dict[str, np.ndarray]:
    """Partial-credit scores in [0, 1], skewed (Beta), with mean `means[c]`, correlated through the item."""
    g = stats.norm.cdf(rng.standard_normal(n))
    out = {}
    for c, m in means.items():
        u = stats.norm.cdf(math.sqrt(rho) * stats.norm.ppf(g) + math.sqrt(1 - rho) * rng.standard_normal(n))
        out[c] = stats.beta.ppf(u, m * 2, (1 - m) * 2)
    return out


def study_of(values: dict[str, dict[str, np.ndarray]], costs: dict[str, float], weights: dict[str, float] | None = None):
    """The drawn results as the pick reads a study: candidate -> suite -> per-item values."""
    from harness.store.reading import StudyData

    suites = list(next(iter(values.values())))
    weights = weights or {s: 1 / len(suites) for s in suites}
    frames = [pd.DataFrame({"candidate": c, "suite": s, "item_id": np.arange(len(v)).astype(str), "metric": "score", "value": v})
              for c, per in values.items() for s, v in per.items()]
    trials = pd.DataFrame([{"candidate": c, "number": i, "is_base": c == "base", "n_samples": costs.get(c, 0.0), "_params": {},
                            "outputs": {}, "objective": sum(weights[s] * v.mean() for s, v in per.items())}
                           for i, (c, per) in enumerate(values.items())])
    meta = {"weights": weights, "headline": {s: "score" for s in suites}, "directions": ["maximize"], "costs": ["n_samples"]}
    data = StudyData("sim", None, meta, trials, pd.DataFrame(), pd.DataFrame(), ["n_samples"])
    data.__dict__["metrics"] = pd.concat(frames, ignore_index=True)  # the cached long frame, built directly
    return data


# ---------------------------------------------------------------- the pick


def pick_shares(draw, costs: dict[str, float], margin: float, draws: int, seed: int = 0, weights=None) -> dict[str, float]:
    """Share of draws in which each candidate is picked; `draw(rng)` -> candidate -> suite -> values."""
    from harness.config import PickOptions
    from harness.select.pick import pick

    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    for _ in range(draws):
        best = pick(study_of(draw(rng), costs, weights), options=PickOptions(margin=margin))
        counts[best.candidate] = counts.get(best.candidate, 0) + 1
    return {c: counts.get(c, 0) / draws for c in costs}


def cheap_worse(k: int, n: int, rho: float, gap: float = 0.10, top: float = 0.70):
    """A cheap candidate `gap` below k - 1 expensive ones at `top` (0/1 items)."""
    ps = {"cheap": top - gap, **{f"big{i}": top for i in range(k - 1)}}
    costs = {"cheap": 100.0, **{f"big{i}": 1000.0 + i for i in range(k - 1)}}
    return (lambda rng: {c: {"task": v} for c, v in correlated_binary(rng, ps, n, rho).items()}), costs


def cheap_equal(n: int, rho: float, p: float = 0.70):
    costs = {"cheap": 100.0, "big": 1000.0}
    return (lambda rng: {c: {"task": v} for c, v in correlated_binary(rng, {"cheap": p, "big": p}, n, rho).items()}), costs


def two_suites_each_worse(n: int, rho: float):
    """The issue's case: two suites at weight 0.5, the cheap candidate 0.06 worse on each."""
    costs = {"cheap": 100.0, "big": 1000.0}

    def draw(rng):
        a = correlated_binary(rng, {"cheap": 0.64, "big": 0.70}, n, rho)
        b = correlated_binary(rng, {"cheap": 0.54, "big": 0.60}, n, rho)
        return {c: {"one": a[c], "two": b[c]} for c in costs}

    return draw, costs


def skewed_cheap_worse(n: int, rho: float):
    costs = {"cheap": 100.0, "big": 1000.0}
    return (lambda rng: {c: {"task": v} for c, v in skewed_scores(rng, {"cheap": 0.80, "big": 0.90}, n, rho).items()}), costs


def seed_noise_shares(seeds: int, draws: int, n: int = 1000, sd: float = 0.05, seed: int = 0) -> float:
    """Share of draws shipping a cheap configuration truly 0.08 below the other (margin 0.05) when each
    training run's mean moves by N(0, sd) with its seed; `seeds` runs per configuration (replicates)."""
    from harness.config import PickOptions
    from harness.select.pick import pick

    rng = np.random.default_rng(seed)
    shipped = 0
    for _ in range(draws):
        runs, origin = {}, {}
        for config, truth in (("cheap", 0.62), ("big", 0.70)):
            for k in range(seeds):
                name = config if k == 0 else f"{config}-seed{k}"
                p = float(np.clip(truth + rng.normal(0, sd), 0.01, 0.99))
                runs[name] = {"task": correlated_binary(rng, {"x": p}, n, 0.0)["x"]}
                origin[name] = config
        data = study_of(runs, {c: (100.0 if origin[c] == "cheap" else 1000.0) for c in runs})
        if seeds > 1:
            number = dict(zip(data.trials.candidate, data.trials.number, strict=True))
            data.trials["replicate_of"] = [None if origin[c] == c else number[origin[c]] for c in data.trials.candidate]
        shipped += pick(data, options=PickOptions(margin=0.05, confirm=False)).candidate == "cheap"
    return shipped / draws


# ---------------------------------------------------------------- the gate


def gate_shares(n: int, draws: int, seed: int = 0) -> dict[str, float]:
    """Confident rules on n items: false pass (truly past the limit) and false fail (truly fine)."""
    from harness.config import GateRule
    from harness.stats.intervals import difference_estimate, mean_estimate

    rng = np.random.default_rng(seed)
    reg = GateRule(metric="t.acc", max_regression=0.05, mode="confident")
    out = {"regression 0.10 passes": 0, "no regression fails": 0, "0.70 passes >= 0.80": 0, "0.90 fails >= 0.80": 0}
    for _ in range(draws):
        worse = correlated_binary(rng, {"base": 0.60, "cand": 0.50}, n, 0.5)
        same = correlated_binary(rng, {"base": 0.60, "cand": 0.60}, n, 0.5)
        ok = [difference_estimate(pd.Series(d["cand"]), pd.Series(d["base"])).interval(0.05)[0] >= -reg.max_regression for d in (worse, same)]
        out["regression 0.10 passes"] += ok[0]
        out["no regression fails"] += not ok[1]
        out["0.70 passes >= 0.80"] += mean_estimate((rng.random(n) < 0.70).astype(float)).interval(0.05)[0] >= 0.80
        out["0.90 fails >= 0.80"] += not mean_estimate((rng.random(n) < 0.90).astype(float)).interval(0.05)[0] >= 0.80
    return {k: v / draws for k, v in out.items()}


# ---------------------------------------------------------------- early stopping


def synthetic_order(sizes: dict[str, int], weights: dict[str, float], chunk: int = 25):
    """An ItemOrder over synthetic suites of these sizes (item ids 0..n-1)."""
    from harness.score.suites import load_suite
    from harness.sweep.early_stop import ItemOrder

    template = load_suite("extraction")
    suites = [dataclasses.replace(template, rows=[{"id": str(i)} for i in range(n)], config=template.config.model_copy(update={"name": name}))
              for name, n in sizes.items()]
    return ItemOrder(suites, weights, {s: "score" for s in sizes}, chunk, chunk)


def stop_shares(order, draw, draws: int, alpha: float = 0.05, seed: int = 0) -> dict[str, float]:
    """How often the challenger is stopped, and stopped although its full objective beats the best's
    (the eventual winner pruned); the share of the challenger's items scoring saved."""
    rng = np.random.default_rng(seed)
    pruned = winner_pruned = wins = 0
    saved = 0.0
    for _ in range(draws):
        results = draw(rng)  # {"best": {suite: values}, "challenger": {suite: values}}
        steps = {}
        for who, per in results.items():
            steps[who] = {order.step[(s, str(i))]: order.scale[s] * v for s, values in per.items() for i, v in enumerate(values)}
        full = {who: sum(order.weights[s] * v.mean() for s, v in per.items()) for who, per in results.items()}
        won = full["challenger"] > full["best"]
        wins += won
        for look in order.looks():
            seen = {k: v for k, v in steps["challenger"].items() if k < look}
            if order.worse_than_best(seen, steps["best"], alpha):
                pruned += 1
                winner_pruned += won
                saved += 1 - look / len(order)
                break
    return {"stopped": pruned / draws, "winner stopped": winner_pruned / draws, "challenger wins": wins / draws,
            "items saved": saved / draws}


def two_suite_challenger(rho: float = 0.3):
    """The issue's case: -0.10 on a 200-item first suite, +0.20 on a 50-item second one."""
    def draw(rng):
        a = correlated_binary(rng, {"best": 0.70, "challenger": 0.60}, 200, rho)
        b = correlated_binary(rng, {"best": 0.50, "challenger": 0.70}, 50, rho)
        return {w: {"first": a[w], "second": b[w]} for w in ("best", "challenger")}

    return synthetic_order({"first": 200, "second": 50}, {"first": 0.5, "second": 0.5}), draw


def skewed_challenger(n: int = 200):
    """A better mean with a lower median: mostly a little worse, sometimes much better."""
    def draw(rng):
        best = rng.beta(5, 5, n)  # mean 0.5, symmetric
        challenger = np.where(rng.random(n) < 0.2, 1.0, np.clip(rng.normal(0.45, 0.1, n), 0, 1))  # mean ~0.56, median 0.47
        return {"best": {"task": best}, "challenger": {"task": challenger}}

    return synthetic_order({"task": n}, {"task": 1.0}), draw


def equal_challenger(n: int = 400):
    def draw(rng):
        d = correlated_binary(rng, {"best": 0.6, "challenger": 0.6}, n, 0.3)
        return {w: {"task": d[w]} for w in d}

    return synthetic_order({"task": n}, {"task": 1.0}), draw


def clearly_worse(n: int = 400):
    def draw(rng):
        d = correlated_binary(rng, {"best": 0.7, "challenger": 0.45}, n, 0.3)
        return {w: {"task": d[w]} for w in d}

    return synthetic_order({"task": n}, {"task": 1.0}), draw


# ---------------------------------------------------------------- coverage


def percentile_bootstrap(x: np.ndarray, rng, n_boot: int = 2000) -> tuple[float, float]:
    """The interval the harness used before issue 28, for the comparison column."""
    means = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
    return tuple(np.quantile(means, [0.025, 0.975]))


def binary_coverage(n: int, p: float) -> tuple[float, float, float]:
    """Exact (enumerated): two-sided 95%, one-sided 95% lower and upper bounds of the 0/1 mean."""
    from harness.stats.intervals import Wilson

    pmf = stats.binom.pmf(np.arange(n + 1), n, p)
    two = sum(w for k, w in enumerate(pmf) if Wilson(k, n).interval(0.05)[0] <= p <= Wilson(k, n).interval(0.05)[1])
    low = sum(w for k, w in enumerate(pmf) if Wilson(k, n).lower(0.05) <= p)
    high = sum(w for k, w in enumerate(pmf) if Wilson(k, n).upper(0.05) >= p)
    return two, low, high


def continuous_coverage(n: int, mean: float, draws: int, seed: int = 0) -> tuple[float, float]:
    """Beta(2m, 2(1 - m)) scores (skewed toward the near bound): bootstrap-t, and the old percentile bootstrap."""
    from harness.stats.intervals import mean_estimate

    rng = np.random.default_rng(seed)
    new = old = 0
    for _ in range(draws):
        x = rng.beta(mean * 2, (1 - mean) * 2, n)
        lo, hi = mean_estimate(x).interval(0.05)
        new += lo <= mean <= hi
        lo, hi = percentile_bootstrap(x, rng)
        old += lo <= mean <= hi
    return new / draws, old / draws


def old_binary_coverage(n: int, p: float, draws: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        lo, hi = percentile_bootstrap((rng.random(n) < p).astype(float), rng)
        hits += lo <= p <= hi
    return hits / draws


# ---------------------------------------------------------------- the table


def main() -> None:
    from common import write_table

    from harness.runtime import environment

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--draws", type=int, default=400)
    a = p.parse_args()
    environment.configure()
    pct = lambda v: f"{100 * v:.1f}%"  # noqa: E731
    rows = []
    for n in (10, 20, 50):
        for prob in (0.5, 0.9, 0.98):
            two, low, high = binary_coverage(n, prob)
            rows.append([f"0/1 items, p = {prob}", n, pct(two), f"{pct(low)} / {pct(high)}", pct(old_binary_coverage(n, prob, a.draws))])
    for n in (10, 20, 50):
        for mean in (0.5, 0.9, 0.98):
            new, old = continuous_coverage(n, mean, a.draws)
            rows.append([f"[0, 1] scores, Beta mean {mean}", n, pct(new), "", pct(old)])
    write_table("decisions-coverage", "Interval coverage (nominal 95%): what the decisions rest on",
                ["values", "items", "95% interval covers", "one-sided 95% lower / upper covers", "before: percentile bootstrap"], rows,
                ["0/1: continuity-corrected Wilson, coverage enumerated exactly; [0, 1]: studentized bootstrap, "
                 f"{a.draws} seeded draws (about ±{100 * 1.96 * math.sqrt(0.05 * 0.95 / a.draws):.1f} points)",
                 "discrete data cannot hit 95% exactly: at n = 50, p = 0.98 the achievable coverages are 92.2% and 98.2%"])

    rows = []
    for n in ITEMS:
        for k in (2, 6):
            for rho in (0.0, 0.3):
                draw, costs = cheap_worse(k, n, rho)
                rows.append([f"cheap 0.60 vs {k - 1} at 0.70, rho {rho}", n, "0.05", pct(pick_shares(draw, costs, 0.05, a.draws)["cheap"]),
                             "shipped worse by > margin"])
        half = n // 2 if n > 20 else n
        draw, costs = two_suites_each_worse(half, 0.3)
        rows.append([f"two suites (w 0.5, {half} items each), cheap -0.06 on each", n, "0.02", pct(pick_shares(draw, costs, 0.02, a.draws)["cheap"]),
                     "shipped worse by > margin"])
        draw, costs = skewed_cheap_worse(n, 0.3)
        rows.append(["skewed [0, 1] scores, cheap 0.80 vs 0.90", n, "0.05", pct(pick_shares(draw, costs, 0.05, a.draws)["cheap"]),
                     "shipped worse by > margin"])
    for n in ITEMS:
        for rho in (0.0, 0.3, 0.5):
            draw, costs = cheap_equal(n, rho)
            rows.append([f"cheap truly equal (0.70), rho {rho}", n, "0.05", pct(pick_shares(draw, costs, 0.05, a.draws)["cheap"]),
                         "power: cheap picked"])
    for seeds in (1, 3):
        rows.append([f"seed noise sd 0.05 per run, cheap 0.62 vs 0.70, {seeds} run(s) per configuration", 1000, "0.05",
                     pct(seed_noise_shares(seeds, max(a.draws // 4, 50))), "shipped worse by > margin"])
    write_table("decisions-pick", "The pick: shipping a candidate worse than the best by more than the margin, and power",
                ["truth", "items", "margin", "share of draws", "what the share is"], rows,
                [f"{a.draws} seeded draws each; 0/1 items unless said; rho: latent correlation of the candidates' items "
                 "(a shared item difficulty); items above 400 per suite are split 9:1 into selection and confirmation items",
                 "target (issue 28): shipped worse by > margin <= 5% at every item count; power >= 80% at 1000 items"])

    rows = []
    for n in ITEMS:
        g = gate_shares(n, a.draws)
        rows.append([n, *(pct(v) for v in g.values())])
    write_table("decisions-gate", "The gate's confident rules: false pass and false fail",
                ["items", *gate_shares(20, 1).keys()], rows,
                [f"{a.draws} seeded draws; regression rule max_regression 0.05 vs a baseline at 0.60 (latent rho 0.5); threshold rule "
                 ">= 0.80; a false pass is bounded by 2.5% (the 95% interval's lower end); false fails fall with items"])

    rows = []
    for name, (order, draw) in {"two suites: -0.10 on 200 items, +0.20 on 50": two_suite_challenger(),
                                "skewed: better mean, lower median": skewed_challenger(),
                                "equal to the best": equal_challenger(),
                                "clearly worse (0.45 vs 0.70)": clearly_worse()}.items():
        r = stop_shares(order, draw, a.draws)
        rows.append([name, len(order), ", ".join(str(x) for x in order.looks()), pct(r["challenger wins"]), pct(r["stopped"]),
                     pct(r["winner stopped"]), pct(r["items saved"])])
    write_table("decisions-early-stopping", "Early stopping of scoring: stopping the eventual winner, and items saved",
                ["challenger", "items", "looks after", "challenger's full objective wins", "stopped", "stopped and would have won",
                 "challenger's items saved"], rows,
                [f"{a.draws} seeded draws; alpha 0.05 spent across the looks (Pocock-type); chunk 25",
                 "target (issue 28): the eventual winner stopped in <= 5% of draws"])


if __name__ == "__main__":
    main()
