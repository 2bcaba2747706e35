"""Sweeps: Optuna over the LoRA training space, each trial trained (train/) and scored (score/).

`SweepWorker` (worker.py) runs one worker, `ExtraWorkers` (local_workers.py) starts more on this
machine with the same `SweepOptions` (options.py). Around the trial loop: input checks before any
model (inputs.py), what a study needs once (claims.py: the base model's trial, merges.py: the merged
candidates), scoring a candidate with early stopping (trial_scoring.py, early_stop.py), heartbeats and
dead-worker recovery (heartbeat.py), the search space, samplers, pruners and objectives (space.py),
the experiment trackers (trackers/), the live progress line (progress.py) and the outcome (outcome.py).
"""

from harness.sweep.inputs import check_inputs
from harness.sweep.local_workers import ExtraWorkers
from harness.sweep.options import SweepOptions
from harness.sweep.worker import SweepWorker

__all__ = ["ExtraWorkers", "SweepOptions", "SweepWorker", "check_inputs"]
