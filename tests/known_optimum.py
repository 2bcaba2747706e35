"""A sweep's search space with a known best configuration, for testing samplers without a model."""

import math

import optuna

from harness.config import SweepConfig
from harness.sweep.space import distributions, make_sampler

SPACE = {"lora_r": {"type": "categorical", "choices": [4, 8, 16]},
         "learning_rate": {"type": "float", "low": 1.0e-5, "high": 1.0e-2, "log": True},
         "n_samples": {"type": "int", "low": 16, "high": 256}}


def config(**fields) -> SweepConfig:
    return SweepConfig.model_validate({"study": "s", "train": {"data": "train.jsonl"}, "space": SPACE, "suites": [{"suite": "extraction"}],
                                       **fields})


def distance(params) -> float:
    """How far a configuration is from the known best (learning rate 1e-3, rank 8, 200 samples)."""
    return abs(math.log10(params["learning_rate"]) + 3) + abs(math.log2(params["lora_r"] / 8)) / 2 + abs(params["n_samples"] - 200) / 240


def search(name: str, seed: int, trials: int) -> list[dict]:
    cfg = config(sampler={"name": name, "seed": seed})
    study = optuna.create_study(sampler=make_sampler(cfg), direction="minimize")
    asked = []
    for _ in range(trials):
        trial = study.ask(distributions(cfg))
        study.tell(trial, distance(trial.params))
        asked.append(trial.params)
    return asked
