"""MLflow (the default tracker): one parent run per study, one nested run per trial.

The tracking store is `paths.mlflow_uri()`: the embedded SQLite store runs/mlflow.db unless
MLFLOW_TRACKING_URI is set; artifacts go to an explicit location (runs/mlartifacts/<study>), never
./mlruns. The study run is RUNNING while a worker works on it and FINISHED when a worker stops
(reopened by the next worker), with the best objective so far logged on it.
"""

from __future__ import annotations

import math
import time

import optuna

from harness.store import paths
from harness.store.study import TrialAttr, candidate_name
from harness.sweep.trackers._base import Tracker, metrics_of


class MLflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, study: str):
        from mlflow import MlflowClient

        self.client = MlflowClient(paths.mlflow_uri())
        exp = self.client.get_experiment_by_name(study)
        self.experiment = exp.experiment_id if exp else self.client.create_experiment(
            study, artifact_location=paths.mlflow_artifacts(study))
        found = self.client.search_runs([self.experiment], "tags.`harness.role` = 'study'", max_results=1)
        if found:
            self.parent = found[0].info.run_id
            if found[0].info.status != "RUNNING":
                self.client.update_run(self.parent, status="RUNNING")
        else:
            self.parent = self.client.create_run(self.experiment, run_name=study,
                                                 tags={"harness.role": "study", "harness.study": study}).info.run_id

    def _run(self, name: str, params: dict) -> str:
        run = self.client.create_run(self.experiment, run_name=name,
                                     tags={"mlflow.parentRunId": self.parent, "harness.role": "trial", "harness.candidate": name})
        for key, value in params.items():
            self.client.log_param(run.info.run_id, key, value)
        return run.info.run_id

    def log_trial(self, name, params, summary, values, attrs):
        from mlflow.entities import Metric

        run_id = self._run(name, params)
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in metrics_of(summary, values).items()]
        metrics += [Metric("train_loss", loss, now, int(step)) for step, loss in attrs.get("loss_curve", []) if math.isfinite(loss)]
        for key in (TrialAttr.TRAIN_S, TrialAttr.TOKENS_SEEN, TrialAttr.SCORE_S):
            if key in attrs:
                metrics.append(Metric(key, float(attrs[key]), now, 0))
        self.client.log_batch(run_id, metrics=metrics)
        if attrs.get("adapter"):
            self.client.log_artifacts(run_id, attrs["adapter"], artifact_path="adapter")
        self.client.set_terminated(run_id)

    def log_failure(self, name, params, reason):
        run_id = self._run(name, params)
        self.client.set_tag(run_id, "harness.fail_reason", reason[:500])
        self.client.set_terminated(run_id, status="FAILED")

    def finish(self, study: optuna.Study) -> None:
        complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if t.values]
        if complete and len(study.directions) == 1:
            pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
            best = pick(complete, key=lambda t: t.values[0])
            self.client.log_metric(self.parent, "best_objective", float(best.values[0]))
            self.client.set_tag(self.parent, "harness.best_candidate", candidate_name(best))
        self.client.set_terminated(self.parent, status="FINISHED")
