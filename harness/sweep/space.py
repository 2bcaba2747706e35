"""What a sweep searches and how it decides: Optuna distributions, samplers, pruners, objectives.

Everything here is derived from the sweep config alone (no engine, no study state beyond what
Optuna passes in), so it is cheap to build and to test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import optuna

from harness.config import SweepConfig
from harness.errors import UserError
from harness.runtime.registry import Registry


def distributions(cfg: SweepConfig) -> dict:
    """What the sampler searches; with multi_fidelity, n_samples is climbed by rungs, not sampled."""
    dists = {}
    for name, p in cfg.space.items():
        if name == "n_samples" and cfg.multi_fidelity.enabled:
            continue
        if p.type == "adaptive":  # the sweep enqueues each size it chooses (forecast/planning.py)
            dists[name] = optuna.distributions.IntDistribution(p.min, p.max, log=True)
        elif p.type == "categorical":
            dists[name] = optuna.distributions.CategoricalDistribution(p.choices)
        elif p.type == "int":
            dists[name] = optuna.distributions.IntDistribution(p.low, p.high, step=p.step, log=p.log)
        else:
            dists[name] = optuna.distributions.FloatDistribution(p.low, p.high, log=p.log)
    return dists


def max_lora_rank(cfg: SweepConfig) -> int:
    """The largest rank any trial can ask for (an engine started before the first adapter sizes LoRA by it);
    a `cat` merge stacks its parents' ranks."""
    p = cfg.space["lora_r"]
    rank = int(max(p.choices) if p.type == "categorical" else p.high)
    return rank * cfg.merge.top_k if cfg.merge is not None and "cat" in cfg.merge.methods else rank


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid, less its `study.stop()` once the grid is done: outside `study.optimize` (a sweep
    asks and tells) that call raises inside `tell`, after the trial was already told. The sweep's
    loop stops at the end of the grid itself (`grid_done`)."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def grid_space(cfg: SweepConfig) -> dict[str, list]:
    searched = {n: p for n, p in cfg.space.items() if not (n == "n_samples" and cfg.multi_fidelity.enabled)}
    bad = [n for n, p in searched.items() if p.type != "categorical"]
    if bad:
        raise UserError(f"sampler grid: every parameter must be categorical ({', '.join(bad)} are not)")
    return {n: list(p.choices) for n, p in searched.items()}


def grid_done(study: optuna.Study, grid: dict[str, list]) -> bool:
    """Every configuration of the grid tried or running, and no retry waiting."""
    S = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    if any(t.state == S.WAITING for t in trials):
        return False
    seen = {tuple(t.params.get(n) for n in grid) for t in trials if t.params}
    return all(combo in seen for combo in itertools.product(*grid.values()))


# sampler name -> (the sweep config -> an Optuna sampler); the names are SweepConfig's `sampler.name`.
SAMPLERS: Registry[Callable[[SweepConfig], optuna.samplers.BaseSampler]] = Registry("sampler")
SAMPLERS.add("grid", lambda cfg: GridSampler(grid_space(cfg), seed=cfg.sampler.seed))
SAMPLERS.add("tpe", lambda cfg: optuna.samplers.TPESampler(seed=cfg.sampler.seed, multivariate=True))
SAMPLERS.add("random", lambda cfg: optuna.samplers.RandomSampler(seed=cfg.sampler.seed))
SAMPLERS.add("cmaes", lambda cfg: optuna.samplers.CmaEsSampler(seed=cfg.sampler.seed))
SAMPLERS.add("gp", lambda cfg: optuna.samplers.GPSampler(seed=cfg.sampler.seed))
SAMPLERS.add("nsgaii", lambda cfg: optuna.samplers.NSGAIISampler(seed=cfg.sampler.seed))


def make_sampler(cfg: SweepConfig) -> optuna.samplers.BaseSampler:
    return SAMPLERS.get(cfg.sampler.name)(cfg)


def make_pruner(cfg: SweepConfig):
    """The study's pruner: multi-fidelity promotions (steps are n_samples) or early stopping of
    scoring (steps are items in the sweep's fixed order, see early_stop.py)."""
    if cfg.scoring.early_stop != "none":  # early_stop.py tests the trial itself; nothing for a pruner to do
        return optuna.pruners.NopPruner()
    if not cfg.multi_fidelity.enabled:
        return optuna.pruners.NopPruner()
    mf = cfg.multi_fidelity
    name = "successive_halving" if cfg.pruner.name == "none" else cfg.pruner.name
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=mf.min_samples, max_resource=cfg.max_samples(), reduction_factor=mf.reduction_factor)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=mf.reduction_factor, n_min_trials=mf.reduction_factor)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=mf.min_samples, reduction_factor=mf.reduction_factor, min_early_stopping_rate=0)


def objectives(cfg: SweepConfig, suites: dict) -> tuple[list[str], Callable[[dict], list[float]], dict]:
    """Directions, a function ({(suite, metric): mean} -> objective values), and the study's
    objective record (weights and headline metric per suite: what a report needs to read the study)."""
    metric_of = {s.suite: s.metric for s in cfg.suites}
    weights = {suite.name: next(s.weight for s in cfg.suites if s.suite == ref) for ref, suite in suites.items()}
    headline = {suite.name: metric_of[ref] or suite.headline for ref, suite in suites.items()}
    if cfg.objectives:
        names = {ref: suite.name for ref, suite in suites.items()}

        def values(means: dict) -> list[float]:
            return [means[(o.suite if o.suite in means else names.get(o.suite, o.suite), o.metric)] for o in cfg.objectives]

        directions = [o.direction for o in cfg.objectives]
    else:

        def values(means: dict) -> list[float]:
            return [sum(w * means[(name, headline[name])] for name, w in weights.items() if w)]

        directions = ["maximize"]
    meta = {"weights": weights, "headline": headline, "directions": directions,
            "objectives": [o.model_dump() for o in cfg.objectives], "pick": cfg.pick.model_dump(), "base": cfg.base}
    return directions, values, meta
