"""Sweeps: Optuna over the LoRA training space, each trial trained (train/) and scored (score/).

`SweepWorker` (worker.py) runs one worker; `ExtraWorkers` (workers.py) starts more on this machine.
The search space, samplers, pruners and objectives are in space.py, the dead-worker recovery in
heartbeat.py, the experiment trackers in trackers/, the live progress line in progress.py.
"""

from harness.sweep.worker import SweepWorker, check_inputs
from harness.sweep.workers import ExtraWorkers, SweepOptions

__all__ = ["ExtraWorkers", "SweepOptions", "SweepWorker", "check_inputs"]
