"""The pick: which candidate should ship, and why.

The best objective, except that among the candidates whose paired difference from the top is not
significant on any weighted suite (sign-flip permutation test, Holm-corrected, alpha 0.05) the
cheapest to train and serve wins: fewest training samples, then smallest rank (`--pick best-mean`
turns this off). The rule and the runner-up are written into best.json and the report itself.
"""

from __future__ import annotations

from harness.stats import mean_ci, paired_difference, weighted_paired_difference
from harness.store.documents import AdapterRef, BestDoc, MeanCI, RunnerUp, VersusBase
from harness.store.reading import StudyData


def pick(data: StudyData, rule: str = "cheapest-tied", alpha: float = 0.05) -> BestDoc:
    """The candidate to ship and why; see the module docstring for the rule."""
    direction = (data.meta.get("directions") or ["maximize"])[0]
    ranked = data.trials.sort_values("objective", ascending=direction == "minimize").reset_index(drop=True)
    top = ranked.iloc[0]
    weights = {s: w for s, w in data.meta.get("weights", {}).items() if w}
    values = data.headline_values()
    chosen, tied, tests = top, [top.candidate], []
    if rule == "cheapest-tied" and len(ranked) > 1:
        for cand in ranked.candidate[1:]:
            for suite in weights:
                if (cand, suite) in values and (top.candidate, suite) in values:
                    d = paired_difference(values[(top.candidate, suite)], values[(cand, suite)])
                    sign = 1 if direction == "maximize" else -1
                    tests.append({"candidate": cand, "suite": suite, "diff": d["diff"], "p": d["p_value"] if sign * d["diff"] > 0 else 1.0})
        adjusted = holm([t["p"] for t in tests])
        for t, p in zip(tests, adjusted, strict=True):
            t["p_holm"] = p
        worse = {t["candidate"] for t in tests if t["p_holm"] < alpha}
        tied += [c for c in ranked.candidate[1:] if c not in worse and any(t["candidate"] == c for t in tests)]
        pool = ranked[ranked.candidate.isin(tied)]
        cost_cols = [c for c in ("n_samples", "lora_r") if c in pool]
        pool = pool.assign(_base_last=pool.is_base.astype(int))  # the base costs nothing but is not a fine-tune
        chosen = pool.sort_values(["_base_last", *cost_cols, "objective"], ascending=[True] * (1 + len(cost_cols)) + [direction == "minimize"]).iloc[0]
    runner_up = top if chosen.candidate != top.candidate else (ranked.iloc[1] if len(ranked) > 1 else None)
    versus = versus_base(data, ranked, weights, values, direction, alpha)
    scores = {s: MeanCI(**mean_ci(values[(chosen.candidate, s)])) for (c, s) in values if c == chosen.candidate}
    mine = None if versus is None else versus.get(chosen.candidate)
    return BestDoc(
        study=data.name,
        candidate=chosen.candidate,
        # Where to get the adapter from any machine: its id in the study's artifact store.
        adapter=None if chosen.is_base else AdapterRef(artifact=chosen.outputs.get("adapter"), store=data.artifacts.url if data.artifacts else None),
        params=chosen["_params"],
        objective=float(chosen.objective),
        scores=scores,
        rule=("best objective" if rule == "best-mean" else
              f"cheapest (fewest n_samples, then smallest lora_r) among candidates not significantly worse than the top "
              f"on any weighted suite (paired sign-flip test, Holm-corrected, alpha={alpha})"),
        tied_with_top=tied,
        # Is any candidate significantly better than the base model on the objective (Holm over candidates)?
        beats_base=None if versus is None else any(v["better"] for v in versus.values()),
        vs_base=None if mine is None else VersusBase(**mine),
        runner_up=None if runner_up is None else RunnerUp(candidate=runner_up.candidate, objective=float(runner_up.objective)),
    )


def versus_base(data: StudyData, ranked, weights: dict, values: dict, direction: str, alpha: float) -> dict | None:
    """Each candidate vs the base on the weighted objective: difference, CI, p (Holm-corrected over
    candidates), and whether it is significantly better. None when the study has no base trial."""
    if not ranked.is_base.any():
        return None
    sign = 1 if direction == "maximize" else -1
    tests = {}
    for cand in ranked.candidate[~ranked.is_base]:
        pairs = [(values[(cand, s)], values[("base", s)], w) for s, w in weights.items() if (cand, s) in values and ("base", s) in values]
        tests[cand] = weighted_paired_difference(pairs, alpha)
    # One-sided: only a difference in the objective's own direction can make a candidate better.
    pvalues = [t["p_value"] if sign * t["diff"] > 0 else 1.0 for t in tests.values()]
    adjusted = holm([1.0 if p != p else p for p in pvalues])  # NaN (nothing paired): never significant
    return {cand: {"diff": t["diff"], "ci": [t["ci_low"], t["ci_high"]], "p_value": t["p_value"], "p_holm": p, "better": p < alpha}
            for (cand, t), p in zip(tests.items(), adjusted, strict=True)}


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone)."""
    order = sorted(range(len(pvalues)), key=pvalues.__getitem__)
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
