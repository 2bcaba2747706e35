"""Training-seed noise: a configuration re-trained with other seeds is one candidate of the pick, its
seeds' spread widens every interval it enters, and the leaderboard shows the spread."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import decisions as sim  # noqa: E402

from harness.config import PickOptions, SweepConfig  # noqa: E402
from harness.select.leaderboard import leaderboard  # noqa: E402
from harness.select.pick import pick  # noqa: E402


def _study(seed_ps: list[float], n: int = 2000):
    rng = np.random.default_rng(0)
    values = {"base": {"task": (rng.random(n) < 0.5).astype(float)}}
    for i, p in enumerate(seed_ps):
        values[f"trial-{i + 1}"] = {"task": (rng.random(n) < p).astype(float)}
    data = sim.study_of(values, {c: 100.0 for c in values if c != "base"})
    # trial-2 and trial-3 re-train trial-1's configuration with other seeds
    data.trials["replicate_of"] = [None, None] + [1] * (len(seed_ps) - 1)
    return data


def test_seeds_are_one_candidate_and_their_spread_widens_the_intervals():
    noisy = pick(_study([0.70, 0.60, 0.80]), options=PickOptions(confirm=False))
    assert noisy.candidate == "trial-1" and noisy.seeds == 3 and abs(noisy.seed_sd - 0.1) < 0.02
    assert noisy.runner_up.candidate == "base"  # its seeds are not separate candidates
    steady = pick(_study([0.70, 0.70, 0.70]), options=PickOptions(confirm=False))
    width = lambda best: best.vs_base.ci[1] - best.vs_base.ci[0]  # noqa: E731
    assert width(noisy) > 0.2 > 0.1 > width(steady)  # 2000 items alone would give about +-0.03
    assert abs(noisy.vs_base.diff - 0.2) < 0.03  # the seeds' mean, not the luckiest seed


def test_the_leaderboard_shows_each_configurations_seeds_and_spread():
    board = leaderboard(_study([0.70, 0.60, 0.80]))
    row = board[board.candidate == "trial-1"].iloc[0]
    assert row.seeds == 3 and abs(row["seed sd"] - 0.1) < 0.02


def test_replicates_in_a_sweep_file():
    base = {"study": "s", "train": {"data": "t.jsonl"}, "suites": [{"suite": "extraction"}],
            "space": {k: {"type": "categorical", "choices": [v]} for k, v in {"lora_r": 8, "learning_rate": 1e-3, "n_samples": 8}.items()}}
    assert SweepConfig.model_validate({**base, "replicates": 3}).replicates.seeds == 3
    assert SweepConfig.model_validate({**base, "replicates": {"seeds": 2, "top": 4}}).replicates.top == 4
