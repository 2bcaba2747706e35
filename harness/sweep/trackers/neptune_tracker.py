"""Neptune through `neptune-scale`: one run per trial.

The hosted neptune.ai service shut down on 2026-03-05. With NEPTUNE_API_TOKEN and NEPTUNE_PROJECT a
self-hosted endpoint is used; without a token (or with NEPTUNE_MODE=offline) runs are written
offline under runs/<study>/neptune/ (one SQLite file per run), which `neptune sync` can upload later
(its exit code says nothing about what it uploaded: check the server).
"""

from __future__ import annotations

import math
import os

import optuna

from harness.store import paths
from harness.sweep.trackers._base import Tracker, metrics_of


class NeptuneTracker(Tracker):
    name = "neptune"

    def __init__(self, study: str):
        self.study = study
        self.offline = os.environ.get("NEPTUNE_MODE") == "offline" or not os.environ.get("NEPTUNE_API_TOKEN")
        self.project = os.environ.get("NEPTUNE_PROJECT", "harness/offline")  # required even offline

    def _run(self, name: str):
        from neptune_scale import Run

        return Run(run_id=f"{self.study}-{name}", experiment_name=f"{self.study}-{name}", project=self.project,
                   mode="offline" if self.offline else "async", log_directory=str(paths.neptune_dir(self.study).resolve()),
                   enable_console_log_capture=False, source_tracking_config=None)

    def log_trial(self, name, params, summary, values, attrs):
        with self._run(name) as run:
            run.log_configs({"study": self.study, "candidate": name, **{f"params/{k}": v for k, v in params.items()}})
            run.log_metrics({f"metrics/{k}": v for k, v in metrics_of(summary, values).items()}, step=0)
            for step, loss in attrs.get("loss_curve", []):
                if math.isfinite(loss):
                    run.log_metrics({"train/loss": loss}, step=int(step))

    def log_failure(self, name, params, reason):
        with self._run(name) as run:
            run.log_configs({"study": self.study, "candidate": name, "fail_reason": reason[:500],
                             **{f"params/{k}": v for k, v in params.items()}})

    def finish(self, study: optuna.Study) -> None:
        """Nothing stays open: each trial's run is closed when it is logged."""
