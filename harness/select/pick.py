"""The pick: which candidate should ship, and why.

Non-inferiority on the utility (objective.py): ship the cheapest candidate *shown* to be within a
margin delta of every other candidate, i.e. whose one-sided (1 - alpha) lower bound of (it - other)
is above -delta against each (an intersection-union test: no correction within a candidate), with
Holm's correction across candidates so that the chance of shipping any candidate worse than the best
by more than delta stays at alpha. Cheapest: fewest training samples, then smallest rank (an --items
file names its own cost columns); the base model costs nothing, so it ships when fine-tuning is shown
to gain less than delta.

Where no candidate can be shown within delta of the others (too few items to tell), the pick is the
most-trained candidate the top cannot be told from (not shown worse than the top, one-sided alpha),
and best.json says `shown_within_margin: false`: a cheaper candidate must earn its place with
evidence; "no evidence of a difference" never ships it. `--pick best-mean` ships the top instead.

The pick is made on the selection items and its score reported on the confirmation items where the
suites are large enough (objective.py: the winner's curse). `vs_base` is the pick's own comparison
with the base; `others_beating_base` names the candidates that beat it when the pick does not.
"""

from __future__ import annotations

import math

from harness.config import PickOptions
from harness.errors import UserError
from harness.select.objective import Comparisons, Utility
from harness.stats.intervals import Estimate, mean_estimate, summary
from harness.store.documents import AdapterRef, BestDoc, Confirmed, MeanCI, RunnerUp, VersusBase
from harness.store.reading import StudyData

DEFAULT_COSTS = ("n_samples", "lora_r")
RULES = ("non-inferior", "best-mean")


def options_for(data: StudyData, margin: float | None = None, alpha: float | None = None, confirm: bool | None = None) -> PickOptions:
    """The sweep file's `pick:` (kept in the study), with what the command line gives in its place."""
    given = {k: v for k, v in {"margin": margin, "alpha": alpha, "confirm": confirm}.items() if v is not None}
    return PickOptions(**{**data.meta.get("pick", {}), **given})


def pick(data: StudyData, rule: str = "non-inferior", options: PickOptions | None = None) -> BestDoc:
    """The candidate to ship and why; see the module docstring for the rule."""
    options = options or options_for(data)
    alpha, margin = options.alpha, options.margin
    utility = Utility.of(data.meta)
    comp = Comparisons(data, utility, options.confirm)
    names = [c for c in data.trials.candidate if comp.complete(c)]
    if not names:
        raise UserError(f"{data.name}: no candidate has items of every suite of {utility.text}")
    selection = {c: comp.objective(c).value for c in names}
    ranked = sorted(names, key=lambda c: -selection[c] if not math.isnan(selection[c]) else math.inf)
    top = ranked[0]
    cost = cost_of(data)
    near: list[str] = []
    if rule == "best-mean" or len(names) == 1:
        chosen, shown = top, len(names) == 1
    else:
        worst_p = {c: _worst_p(comp, c, [j for j in ranked if j != c], margin, alpha) for c in names}
        adjusted = dict(zip(worst_p, holm(list(worst_p.values())), strict=True))
        near = [c for c in ranked if adjusted[c] < alpha]
        shown = bool(near)
        if near:
            chosen = min(near, key=lambda c: (cost(c), -selection[c]))
        else:
            told_apart = {c for c in names if c != top and comp.difference(c, top).upper(alpha) < 0}  # shown worse than the top
            chosen = max((c for c in names if c not in told_apart), key=lambda c: (cost(c), selection[c]))
    row = data.trials[data.trials.candidate == chosen].iloc[0]
    runner_up = top if chosen != top else (ranked[1] if len(ranked) > 1 else None)
    confirming = True if comp.split else None  # report on items the pick was not chosen on
    versus, others = versus_base(comp, names, chosen, confirming, alpha)
    score = comp.objective(chosen, confirming)
    low, high = score.interval(alpha)
    per_suite = {s: MeanCI(**summary(mean_estimate(comp.items_of(chosen, s, confirming).to_numpy()), alpha)) for s, _, _ in utility.parts}
    return BestDoc(
        study=data.name,
        candidate=chosen,
        # Where to get the adapter from any machine: its id in the study's artifact store.
        adapter=None if row.is_base or data.artifacts is None else AdapterRef(artifact=row.outputs.get("adapter"), store=data.artifacts.url),
        params=row["_params"],
        objective=float(score.value),
        confirmed=Confirmed(on="confirmation items" if comp.split else "all items", n_items=comp.n_items(confirming),
                            selection_objective=float(selection[chosen]), ci=[low, high]),
        scores=per_suite,
        rule=rule_text(rule, alpha, margin, cost_columns(data)),
        utility=utility.text,
        margin=margin,
        shown_within_margin=shown,
        near_best=near,
        beats_base=None if versus is None else versus.better,
        vs_base=versus,
        others_beating_base=others,
        runner_up=None if runner_up is None else RunnerUp(candidate=runner_up, objective=float(selection[runner_up])),
        seeds=comp.seeds.get(chosen, 1),
        seed_sd=comp.seed_sd.get(chosen),
    )


def _worst_p(comp: Comparisons, cand: str, others: list[str], margin: float, alpha: float) -> float:
    """Intersection-union: `cand` is near the best only if it is shown within the margin of every
    other, so its p-value is the largest of its comparisons'. The others come best first, and the
    search stops at the first comparison that cannot pass at alpha: no Holm step rejects a p-value
    at or above alpha, so the decision is the same and a large study costs about one comparison per
    candidate that is not near the best."""
    worst = 0.0
    for other in others:
        d = comp.difference(cand, other)
        if not d.lower(alpha) > -margin:  # NaN (cannot tell) included
            return max(worst, _p(d.p_above(-margin)), alpha)
        worst = max(worst, _p(d.p_above(-margin)))
    return worst


def rule_text(rule: str, alpha: float, margin: float, costs: list[str]) -> str:
    if rule == "best-mean":
        return "best objective on the selection items"
    cheapest = f"cheapest (lowest {', then '.join(costs)})" if costs else "best-scoring (no cost columns)"
    return (f"{cheapest} candidate shown within {margin:g} of every other on the objective "
            f"(one-sided {1 - alpha:.0%} bounds, Holm across candidates); if none is shown: the most-trained candidate not shown "
            "worse than the top")


def cost_columns(data: StudyData) -> list[str]:
    """What makes a candidate cheaper, in order: the meta's cost columns (an --items file's), else n_samples and lora_r."""
    return [c for c in data.meta.get("costs", DEFAULT_COSTS) if c in data.trials]


def cost_of(data: StudyData):
    """candidate -> its cost key (ascending is cheaper); the base model costs nothing."""
    columns = cost_columns(data)
    rows = data.trials.set_index("candidate")

    def cost(cand: str) -> tuple:
        row = rows.loc[cand]
        if row.is_base:
            return tuple(0.0 for _ in columns)
        return tuple(float(row[c]) if row[c] == row[c] else math.inf for c in columns)  # unknown cost: the most expensive

    return cost


def versus_base(comp: Comparisons, names: list[str], chosen: str, confirming: bool | None, alpha: float) -> tuple[VersusBase | None, list[str]]:
    """The pick against the base (one-sided: is it better?) and the other candidates shown better than
    the base on all items (Holm over them). The pick's own test is on the confirmation items where the
    suites were split (no selection on them, no correction needed), else Holm-corrected with the others."""
    if "base" not in names:
        return None, []
    tuned = [c for c in names if c != "base"]
    p_all = {c: _p(comp.difference(c, "base", None).p_above(0.0)) for c in tuned}
    adjusted = dict(zip(p_all, holm(list(p_all.values())), strict=True))
    others = [c for c in tuned if c != chosen and adjusted[c] < alpha]
    if chosen == "base":
        return None, others
    est: Estimate = comp.difference(chosen, "base", confirming)
    p = _p(est.p_above(0.0))
    p_adj = p if confirming else adjusted[chosen]
    low, high = est.interval(alpha)
    return VersusBase(diff=est.value, ci=[low, high], p_value=p, p_holm=p_adj, better=p_adj < alpha), others


def _p(p: float) -> float:
    return 1.0 if math.isnan(p) else p  # an undetermined comparison shows nothing


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone)."""
    order = sorted(range(len(pvalues)), key=pvalues.__getitem__)
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted
