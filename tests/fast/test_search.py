"""How a sweep searches and decides, on real Optuna studies with a known objective (no model): every
sampler the config names, the multi-fidelity pruners, and objectives (several, minimized)."""

import optuna
import pytest
from known_optimum import SPACE, config, distance, search

from harness.sweep.space import distributions, make_pruner, make_sampler, objectives


@pytest.mark.parametrize(("name", "kind"), [("tpe", "TPESampler"), ("cmaes", "CmaEsSampler"), ("gp", "GPSampler"), ("nsgaii", "NSGAIISampler"),
                                            ("random", "RandomSampler")])
def test_every_sampler_searches_the_space_reproducibly(name, kind):
    """Each sampler the config names is built, stays in the space and replays under its seed (whether the
    model-based ones learn: tests/integration/test_samplers.py, seconds per sampler)."""
    assert type(make_sampler(config(sampler={"name": name}))).__name__ == kind
    first = search(name, seed=0, trials=12)
    assert first == search(name, seed=0, trials=12)  # a seed replays the sweep
    assert first != search(name, seed=1, trials=12)
    for params in first:
        assert params["lora_r"] in (4, 8, 16) and 1e-5 <= params["learning_rate"] <= 1e-2 and 16 <= params["n_samples"] <= 256


def test_several_objectives_minimized_or_maximized_make_a_pareto_front():
    cfg = config(objectives=[{"suite": "extraction", "metric": "field_f1"}, {"suite": "extraction", "metric": "loss", "direction": "minimize"}],
                 sampler={"name": "nsgaii", "seed": 0})
    directions, values, meta = objectives(cfg, {"extraction": type("Suite", (), {"name": "extraction", "headline": "field_f1"})()})
    assert directions == ["maximize", "minimize"] and meta["objectives"][1]["direction"] == "minimize"
    assert values({("extraction", "field_f1"): 0.7, ("extraction", "loss"): 1.3}) == [0.7, 1.3]  # each objective its own metric
    study = optuna.create_study(sampler=make_sampler(cfg), directions=directions)
    for _ in range(40):
        trial = study.ask(distributions(cfg))
        f1 = 1 - distance(trial.params) / 4
        study.tell(trial, values({("extraction", "field_f1"): f1, ("extraction", "loss"): trial.params["lora_r"] / 16}))
    front = study.best_trials
    assert 1 <= len(front) < 40
    for t in front:  # nothing beats a front member on both: higher f1 AND lower loss
        assert not any(o.values[0] > t.values[0] and o.values[1] < t.values[1] for o in study.trials)


def test_the_weighted_objective_is_the_weighted_sum_of_the_suites_headlines():
    cfg = config(suites=[{"suite": "extraction", "weight": 1.0}, {"suite": "mmlu", "weight": 0.5}])
    suites = {ref: type("Suite", (), {"name": ref, "headline": h})() for ref, h in (("extraction", "field_f1"), ("mmlu", "acc"))}
    directions, values, _ = objectives(cfg, suites)
    assert directions == ["maximize"]
    assert values({("extraction", "field_f1"): 0.8, ("mmlu", "acc"): 0.4, ("extraction", "exact_match"): 0.1}) == [pytest.approx(1.0)]


@pytest.mark.parametrize("name", ["median", "hyperband", "successive_halving"])
def test_multi_fidelity_pruners_stop_the_weak_and_promote_the_best(name):
    """Trials of fixed quality report it at each rung (n_samples 16, 48, 144): the pruner stops weak ones
    at an early rung and never stops the best."""
    cfg = config(multi_fidelity={"enabled": True, "min_samples": 16, "reduction_factor": 3}, pruner={"name": name},
                 space={**SPACE, "n_samples": {"type": "categorical", "choices": [16, 48, 144]}})
    pruner = make_pruner(cfg)
    assert type(pruner).__name__ == {"median": "MedianPruner", "hyperband": "HyperbandPruner",
                                     "successive_halving": "SuccessiveHalvingPruner"}[name]
    study = optuna.create_study(direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0))
    qualities = [0.3 + 0.6 * ((7 * i) % 27) / 26 for i in range(27)]  # a fixed, shuffled spread of qualities
    stopped = {}
    for q in qualities:
        trial = study.ask()
        for rung in (16, 48, 144):
            trial.report(q, step=rung)
            if trial.should_prune():
                stopped[q] = rung
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, q)
    assert max(qualities) not in stopped
    assert len(stopped) >= 5
    kept = [q for q in qualities if q not in stopped]
    assert sum(stopped) / len(stopped) < sum(kept) / len(kept)
