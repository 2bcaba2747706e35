"""Experiment trackers behind one small interface; any combination, each optional.

A tracker error is a warning and never stops a sweep. What is logged: trial params, per-suite
metrics with their CIs, the objective, the training loss curve, and (MLflow) the adapter as an
artifact. Secrets are never logged: only params, metrics and paths.

- mlflow (default): SQLite tracking store runs/mlflow.db (MLFLOW_TRACKING_URI overrides), explicit
  artifact location runs/mlartifacts/<study>; one parent run per study, one nested run per trial.
- neptune: neptune-scale. The hosted neptune.ai service shut down on 2026-03-05; a self-hosted
  endpoint works with NEPTUNE_API_TOKEN/NEPTUNE_PROJECT, and without a token (or NEPTUNE_MODE=offline)
  runs are written offline under runs/<study>/neptune/ (one SQLite file per run).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

log = logging.getLogger(__name__)


def mlflow_uri(runs: Path) -> str:
    """MLFLOW_TRACKING_URI, else the embedded SQLite store runs/mlflow.db."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(runs / 'mlflow.db').resolve()}"


def _metrics(summary, values) -> dict[str, float]:
    out = {f"objective{i or ''}": float(v) for i, v in enumerate(values)}
    for r in summary.itertuples():
        for key, value in ((f"{r.suite}.{r.metric}", r.value), (f"{r.suite}.{r.metric}.ci_low", r.ci_low), (f"{r.suite}.{r.metric}.ci_high", r.ci_high)):
            if value is not None and not math.isnan(value):
                out[key] = float(value)
    return out


class Tracker:
    name = "?"

    def log_trial(self, name: str, params: dict, summary, values, attrs: dict) -> None: ...

    def log_failure(self, name: str, params: dict, reason: str) -> None: ...

    def finish(self, study) -> None: ...


class MLflowTracker(Tracker):
    name = "mlflow"

    def __init__(self, study: str, root: Path):
        from mlflow import MlflowClient

        runs = root.parent
        self.uri = mlflow_uri(runs)
        self.client = MlflowClient(self.uri)
        exp = self.client.get_experiment_by_name(study)
        self.experiment = exp.experiment_id if exp else self.client.create_experiment(
            study, artifact_location=(runs / "mlartifacts" / study).resolve().as_uri())
        found = self.client.search_runs([self.experiment], "tags.`harness.role` = 'study'", max_results=1)
        self.parent = found[0].info.run_id if found else self.client.create_run(
            self.experiment, run_name=study, tags={"harness.role": "study", "harness.study": study}).info.run_id

    def _run(self, name: str, params: dict):
        run = self.client.create_run(self.experiment, run_name=name,
                                     tags={"mlflow.parentRunId": self.parent, "harness.role": "trial", "harness.candidate": name})
        for key, value in params.items():
            self.client.log_param(run.info.run_id, key, value)
        return run.info.run_id

    def log_trial(self, name, params, summary, values, attrs):
        from mlflow.entities import Metric

        run_id = self._run(name, params)
        import time

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, 0) for k, v in _metrics(summary, values).items()]
        metrics += [Metric("train_loss", loss, now, int(step)) for step, loss in attrs.get("loss_curve", []) if math.isfinite(loss)]
        for key in ("train_s", "tokens_seen", "score_s"):
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


class NeptuneTracker(Tracker):
    name = "neptune"

    def __init__(self, study: str, root: Path):
        self.study, self.root = study, root
        self.offline = os.environ.get("NEPTUNE_MODE") == "offline" or not os.environ.get("NEPTUNE_API_TOKEN")
        self.project = os.environ.get("NEPTUNE_PROJECT", "harness/offline")

    def _run(self, name: str):
        from neptune_scale import Run

        return Run(run_id=f"{self.study}-{name}", experiment_name=f"{self.study}-{name}", project=self.project,
                   mode="offline" if self.offline else "async", log_directory=str((self.root / "neptune").resolve()),
                   enable_console_log_capture=False, source_tracking_config=None)

    def log_trial(self, name, params, summary, values, attrs):
        with self._run(name) as run:
            run.log_configs({"study": self.study, "candidate": name, **{f"params/{k}": v for k, v in params.items()}})
            run.log_metrics({f"metrics/{k}": v for k, v in _metrics(summary, values).items()}, step=0)
            for step, loss in attrs.get("loss_curve", []):
                if math.isfinite(loss):
                    run.log_metrics({"train/loss": loss}, step=int(step))

    def log_failure(self, name, params, reason):
        with self._run(name) as run:
            run.log_configs({"study": self.study, "candidate": name, "fail_reason": reason[:500],
                             **{f"params/{k}": v for k, v in params.items()}})


class Trackers:
    """Fans out to every tracker; a failing tracker is logged and dropped, never fatal."""

    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers

    def _each(self, method: str, *args):
        for t in list(self.trackers):
            try:
                getattr(t, method)(*args)
            except Exception as err:  # noqa: BLE001 - tracking must never stop a sweep
                log.warning("tracker %s failed in %s (disabled for this run): %s", t.name, method, err)
                self.trackers.remove(t)

    def log_trial(self, *args):
        self._each("log_trial", *args)

    def log_failure(self, *args):
        self._each("log_failure", *args)

    def finish(self, study):
        self._each("finish", study)


def make_trackers(names: list[str], cfg, root: Path) -> Trackers:
    made = []
    for name in dict.fromkeys(names):
        if name == "none":
            continue
        try:
            made.append({"mlflow": MLflowTracker, "neptune": NeptuneTracker}[name](cfg.study, root))
        except Exception as err:  # noqa: BLE001
            log.warning("tracker %s unavailable: %s", name, err)
    return Trackers(made)
